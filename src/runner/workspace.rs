//! A run's workspace: what the agent changed in its copy of the project, and
//! handing the copy to the container's user.
//!
//! Both runners copy the project into a per-run directory
//! ([`super::process::copy_tree`]); the project itself is never written.
//! After the agent ends, [`changed_files`] compares the copy with the
//! project and lists every path added, changed or deleted, for the execution
//! log ("changed files: …"). `.git/` directories are skipped: their churn
//! (index, objects) says nothing a person wants to read. The comparison runs
//! on a blocking thread; nothing is kept, so a crash loses nothing but the
//! run directory, which the next attempt (or the orphan sweep) removes.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// What a path is, for comparison.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    File(u64),
    Dir,
    Symlink(PathBuf),
    Other,
}

/// Relative paths (`/`-separated, sorted) that differ between the project
/// `original` and the run's `workspace`: added, changed (content, kind or
/// link target) or deleted files and links, and added or deleted empty
/// directories.
///
/// # Errors
///
/// A tree that cannot be read.
pub fn changed_files(original: &Path, workspace: &Path) -> io::Result<Vec<String>> {
    let mut changed = BTreeSet::new();
    compare(original, workspace, Path::new(""), &mut changed)?;
    Ok(changed.into_iter().collect())
}

/// [`changed_files`] on a blocking thread; a failure is logged (with the
/// run's directory, never file contents) and gives an empty list: the list
/// is informative, the run's outcome does not depend on it.
pub async fn list_changes(original: PathBuf, workspace: PathBuf) -> Vec<String> {
    let dir = workspace.clone();
    match tokio::task::spawn_blocking(move || changed_files(&original, &workspace)).await {
        Ok(Ok(files)) => files,
        Ok(Err(e)) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot list the changed files");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "listing the changed files failed");
            Vec::new()
        }
    }
}

/// Whether one path differs between `before` (`None`: it did not exist)
/// and `after`: its kind, a file's content or a link's target. Two
/// directories are the same here (their entries are compared one by one).
///
/// # Errors
///
/// A path that cannot be read.
pub fn differs(before: Option<&Path>, after: &Path) -> io::Result<bool> {
    let a = match before {
        Some(path) => kind(path)?,
        None => None,
    };
    let b = kind(after)?;
    Ok(match (&a, &b, before) {
        (Some(Kind::File(la)), Some(Kind::File(lb)), Some(pa)) => {
            la != lb || !same_content(pa, after)?
        }
        (Some(Kind::Dir), Some(Kind::Dir), _) => false,
        _ => a != b,
    })
}

fn entries(dir: &Path) -> io::Result<BTreeSet<std::ffi::OsString>> {
    match fs::read_dir(dir) {
        Ok(read) => read
            .map(|e| e.map(|e| e.file_name()))
            .filter(|name| name.as_ref().map_or(true, |n| n != ".git"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

fn kind(path: &Path) -> io::Result<Option<Kind>> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let t = meta.file_type();
    Ok(Some(if t.is_symlink() {
        Kind::Symlink(fs::read_link(path)?)
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_file() {
        Kind::File(meta.len())
    } else {
        Kind::Other
    }))
}

fn compare(a: &Path, b: &Path, rel: &Path, changed: &mut BTreeSet<String>) -> io::Result<()> {
    let names: BTreeSet<_> = entries(a)?.union(&entries(b)?).cloned().collect();
    for name in names {
        let (pa, pb, r) = (a.join(&name), b.join(&name), rel.join(&name));
        match (kind(&pa)?, kind(&pb)?) {
            (Some(Kind::Dir), Some(Kind::Dir)) => compare(&pa, &pb, &r, changed)?,
            (Some(Kind::Dir), None) | (None, Some(Kind::Dir)) => {
                // A whole directory added or deleted: its files, or itself
                // when empty.
                let before = changed.len();
                compare(&pa, &pb, &r, changed)?;
                if changed.len() == before {
                    changed.insert(display(&r));
                }
            }
            (Some(Kind::File(la)), Some(Kind::File(lb))) => {
                if la != lb || !same_content(&pa, &pb)? {
                    changed.insert(display(&r));
                }
            }
            (ka, kb) if ka == kb => {}
            (ka, kb) => {
                // Kinds differ (file ↔ link ↔ dir), or one side is missing.
                if let Some(Kind::Dir) = ka {
                    compare(&pa, Path::new("/nonexistent"), &r, changed)?;
                }
                if let Some(Kind::Dir) = kb {
                    compare(Path::new("/nonexistent"), &pb, &r, changed)?;
                }
                changed.insert(display(&r));
            }
        }
    }
    Ok(())
}

fn same_content(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (fs::File::open(a)?, fs::File::open(b)?);
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = read_full(&mut fa, &mut ba)?;
        let nb = read_full(&mut fb, &mut bb)?;
        if na != nb || ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn display(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Gives `root` and everything under it to `uid:gid` (without following
/// links). When that is not permitted (a worker that is not root), makes the
/// tree writable by everyone instead: the run directory around it is private
/// to the worker, so only the container's user gains access.
///
/// # Errors
///
/// A tree that cannot be walked, or modes that cannot be changed.
pub fn hand_over(root: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    if uid.is_some() && chown_tree(root, uid, gid).is_ok() {
        return Ok(());
    }
    open_tree(root)
}

fn chown_tree(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::lchown(path, uid, gid)?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn open_tree(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    let wanted = if meta.is_dir() {
        mode | 0o777
    } else {
        // rw for all; x for all where the owner had it.
        mode | 0o666 | if mode & 0o100 != 0 { 0o111 } else { 0 }
    };
    fs::set_permissions(path, fs::Permissions::from_mode(wanted))?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            open_tree(&entry?.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn lists_added_changed_and_deleted() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for root in [a.path(), b.path()] {
            write(root, "same.txt", "same");
            write(root, "src/lib.rs", "fn a() {}");
            write(root, "src/keep.rs", "keep");
            write(root, ".git/index", "x");
            write(root, "gone/dir/file", "bye");
        }
        write(b.path(), "src/lib.rs", "fn b() {}"); // same length, other bytes
        write(b.path(), "src/new.rs", "new");
        write(b.path(), "nested/deep/added.md", "hi");
        write(b.path(), ".git/index", "changed but ignored");
        fs::remove_dir_all(b.path().join("gone")).unwrap();
        fs::create_dir(b.path().join("empty")).unwrap();
        std::os::unix::fs::symlink("same.txt", b.path().join("link")).unwrap();
        fs::remove_file(b.path().join("src/keep.rs")).unwrap();
        fs::create_dir(b.path().join("src/keep.rs")).unwrap();
        let changed = changed_files(a.path(), b.path()).unwrap();
        assert_eq!(
            changed,
            [
                "empty",
                "gone/dir/file",
                "link",
                "nested/deep/added.md",
                "src/keep.rs",
                "src/lib.rs",
                "src/new.rs"
            ]
        );
        assert!(changed_files(a.path(), a.path()).unwrap().is_empty());
    }

    #[test]
    fn hand_over_opens_the_tree_when_chown_is_not_possible() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/b.txt", "x");
        hand_over(dir.path(), None, None).unwrap();
        let mode = fs::metadata(dir.path().join("a/b.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o666, 0o666);
        let mode = fs::metadata(dir.path().join("a"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o777);
    }
}
