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
            include_str!(concat!("sql/", $dir, "/ui.sql")),
            include_str!(concat!("sql/", $dir, "/sessions.sql")),
            include_str!(concat!("sql/", $dir, "/retention.sql")),
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

    /// Every query name the crate's source passes to `Store::q`, with the
    /// file it is in.
    fn names_used_in_code() -> Vec<(String, String)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (i, _) in text.match_indices("q(\"") {
                        let name = &text[i + 3..];
                        let name = &name[..name.find('"').unwrap_or(0)];
                        let before = text[..i].chars().next_back();
                        // A method call (`self.q(…)`), not a name ending in q.
                        if before == Some('.') && !name.is_empty() {
                            out.push((name.to_owned(), path.display().to_string()));
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut out,
        );
        out
    }

    #[test]
    fn every_query_the_code_names_exists_on_every_backend() {
        let used = names_used_in_code();
        assert!(used.len() > 10, "{used:?}");
        for (backend, queries) in [
            ("sqlite", &*SQLITE),
            ("mysql", &*MYSQL),
            ("postgres", &*POSTGRES),
        ] {
            for (name, file) in &used {
                assert!(
                    queries.by_name.contains_key(name.as_str()),
                    "{file} uses q({name:?}), which src/store/sql/{backend}/ does not define"
                );
            }
        }
    }
}
