//! Named SQL queries, one directory per backend: `sql/<backend>/<area>.sql`
//! (`core.sql`: projects, keys, executions, logs, queue; further areas in
//! files of their own).
//!
//! A file is a sequence of blocks, each starting with a line
//! `-- name: <query_name>`; the block's text up to the next such line is the
//! statement. Every backend must define every name
//! (`every_backend_defines_every_query` checks it).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use crate::db::Backend;

#[derive(Debug)]
pub(super) struct Queries {
    by_name: BTreeMap<&'static str, &'static str>,
}

/// The area files of one backend, in a fixed order.
macro_rules! backend_sql {
    ($dir:literal) => {
        &[
            include_str!(concat!("sql/", $dir, "/core.sql")),
            include_str!(concat!("sql/", $dir, "/workflows.sql")),
            include_str!(concat!("sql/", $dir, "/workers.sql")),
            include_str!(concat!("sql/", $dir, "/limits.sql")),
            include_str!(concat!("sql/", $dir, "/github.sql")),
        ]
    };
}

static SQLITE: LazyLock<Queries> = LazyLock::new(|| Queries::parse(backend_sql!("sqlite")));
static MYSQL: LazyLock<Queries> = LazyLock::new(|| Queries::parse(backend_sql!("mysql")));
static POSTGRES: LazyLock<Queries> = LazyLock::new(|| Queries::parse(backend_sql!("postgres")));

impl Queries {
    pub(super) fn for_backend(backend: Backend) -> &'static Queries {
        match backend {
            Backend::Sqlite => &SQLITE,
            Backend::MySql => &MYSQL,
            Backend::Postgres => &POSTGRES,
        }
    }

    fn parse(files: &[&'static str]) -> Queries {
        let mut by_name = BTreeMap::new();
        for text in files {
            Self::parse_file(text, &mut by_name);
        }
        Queries { by_name }
    }

    fn parse_file(text: &'static str, by_name: &mut BTreeMap<&'static str, &'static str>) {
        let mut rest = text;
        while let Some(start) = rest.find("-- name: ") {
            let after = &rest[start + "-- name: ".len()..];
            let name_end = after.find('\n').unwrap_or(after.len());
            let name = after[..name_end].trim();
            let body_and_rest = &after[name_end..];
            let body_end = body_and_rest
                .find("-- name: ")
                .unwrap_or(body_and_rest.len());
            let body = body_and_rest[..body_end]
                .trim()
                .trim_end_matches(';')
                .trim();
            let previous = by_name.insert(name, body);
            assert!(previous.is_none(), "SQL query {name:?} is defined twice");
            rest = &body_and_rest[body_end..];
        }
    }

    /// The statement named `name`. A missing name is a bug in this crate,
    /// caught by the test below before it can ship.
    pub(super) fn get(&self, name: &str) -> &'static str {
        match self.by_name.get(name) {
            Some(sql) => sql,
            None => panic!("no SQL query named {name:?} for this backend"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_backend_defines_every_query() {
        let names = |q: &Queries| q.by_name.keys().copied().collect::<Vec<_>>();
        let sqlite = names(&SQLITE);
        assert!(sqlite.len() > 10, "{sqlite:?}");
        assert_eq!(sqlite, names(&MYSQL), "mysql.sql differs from sqlite.sql");
        assert_eq!(
            sqlite,
            names(&POSTGRES),
            "postgres.sql differs from sqlite.sql"
        );
        for q in [&*SQLITE, &*MYSQL, &*POSTGRES] {
            for (name, sql) in &q.by_name {
                assert!(!sql.is_empty(), "{name} is empty");
            }
        }
    }
}
