//! A workspace's changes, packed so the next workflow step starts from them.
//!
//! The steps of a workflow run share one evolving workspace without sharing
//! a disk: when a step's agent exits cleanly, its runner packs what differs
//! from the project ([`pack`]: the paths [`super::workspace::changed_files`]
//! lists) into a gzipped tar — every added or changed file, link and empty
//! directory under `files/`, and the deleted paths, one per line, in
//! `deleted` — which the execution job stores with the execution's end
//! (`execution_changes`, in the same transaction). The next step's runner
//! copies the project and applies that pack ([`apply`]) before its agent
//! starts. Any worker, on any host, can take the next step; a step run twice
//! starts from the same pack both times.
//!
//! Packs are cumulative (the whole difference from the project), so a step
//! needs only its predecessor's. `.git/` is not carried (it is not compared).
//! A pack over [`MAX_PACKED_BYTES`] is not kept: the runner says so in the
//! log and the next step starts from the earlier state; the pack is
//! written through a counting sink that gives up as soon as it passes the
//! limit, so an oversized workspace is never held in memory.
//!
//! **Links.** The workspace is the agent's: it may have replaced a
//! directory with a symbolic link to a host path. Neither side follows a
//! link: [`pack`] stores links as links and treats a path under a link as
//! gone (it reads no file through one), and [`apply`] writes and deletes
//! nothing under a link (a path whose parent is a link is refused), so a
//! pack can neither read host files into the database nor write to the host.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tokio::sync::mpsc;

use super::{OutputLine, Stream};

/// The largest pack carried between steps (compressed). It is one row of
/// the database; MariaDB's default `max_allowed_packet` is 16 MiB.
pub const MAX_PACKED_BYTES: usize = 8 * 1024 * 1024;

const FILES: &str = "files";
const DELETED: &str = "deleted";

/// Packs the `changed` paths (relative, `/`-separated, as
/// [`super::workspace::changed_files`] gives them) of `workspace`: those
/// that exist there as files, links or empty directories go in the pack,
/// those that do not are recorded as deleted.
///
/// # Errors
///
/// A changed path that cannot be read.
pub fn pack(workspace: &Path, changed: &[String]) -> io::Result<Vec<u8>> {
    let sink = Capped {
        bytes: Vec::new(),
        max: MAX_PACKED_BYTES,
    };
    let mut tar = tar::Builder::new(GzEncoder::new(sink, Compression::fast()));
    tar.follow_symlinks(false);
    let mut deleted = String::new();
    for rel in changed {
        let path = workspace.join(rel);
        if under_link(workspace, Path::new(rel))? {
            // Behind a link the agent made: not the workspace's to carry.
            deleted.push_str(rel);
            deleted.push('\n');
            continue;
        }
        match fs::symlink_metadata(&path) {
            Ok(_) => tar.append_path_with_name(&path, Path::new(FILES).join(rel))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                deleted.push_str(rel);
                deleted.push('\n');
            }
            Err(e) => return Err(e),
        }
    }
    let mut header = tar::Header::new_gnu();
    header.set_size(deleted.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, DELETED, deleted.as_bytes())?;
    Ok(tar.into_inner()?.finish()?.bytes)
}

/// A byte sink that fails once it would hold more than `max` bytes: a pack
/// over the limit stops being built there.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > self.max {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!(
                    "its changes pack to more than the {} MiB carried between workflow steps",
                    self.max / 1048576
                ),
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The paths a pack wrote and deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub written: BTreeSet<String>,
    pub deleted: BTreeSet<String>,
}

/// Applies a pack made by [`pack`] to `workspace` (a fresh copy of the
/// project): deletes what was deleted, then writes what was added or
/// changed, replacing whatever is in the way. Says which paths it touched.
///
/// # Errors
///
/// A corrupt pack, a path that would leave the workspace, or a write that
/// fails.
pub fn apply(workspace: &Path, packed: &[u8]) -> io::Result<Applied> {
    let mut applied = Applied::default();
    let mut archive = tar::Archive::new(GzDecoder::new(packed));
    archive.set_preserve_permissions(true);
    archive.set_overwrite(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        if name == Path::new(DELETED) {
            let mut list = String::new();
            entry.read_to_string(&mut list)?;
            for rel in list.lines().filter(|l| !l.is_empty()) {
                let target = inside(workspace, Path::new(rel))?;
                // Under a link it is already gone from the workspace; what
                // the link points at is never touched.
                if !under_link(workspace, Path::new(rel))? {
                    remove(workspace, &target)?;
                }
                applied.deleted.insert(rel.to_owned());
            }
            continue;
        }
        let rel = name.strip_prefix(FILES).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected entry {} in a workspace pack", name.display()),
            )
        })?;
        let target = inside(workspace, rel)?;
        if under_link(workspace, rel)? {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is under a symbolic link; a pack writes nothing through one",
                    rel.display()
                ),
            ));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        // A file where a directory goes (or the other way) is removed first.
        let is_dir = entry.header().entry_type().is_dir();
        match fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() && is_dir => {}
            Ok(meta) if meta.is_dir() => fs::remove_dir_all(&target)?,
            Ok(_) => fs::remove_file(&target)?,
            Err(_) => {}
        }
        entry.unpack(&target)?;
        applied.written.insert(
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
        );
    }
    Ok(applied)
}

/// Where a step's workspace started when a pack was applied: the pack's
/// files alone, unpacked in `dir`, and what it wrote and deleted. With the
/// project, that is enough to tell what the agent itself changed
/// ([`agent_changes`]) without a second copy of the project.
#[derive(Debug)]
pub struct Start {
    pub dir: PathBuf,
    pub applied: Applied,
}

/// Makes `dest` a copy of `project` with `base` (a predecessor's pack)
/// applied, on a blocking thread; with a pack, also unpacks it alone into
/// `start_dir` and returns that [`Start`].
///
/// # Errors
///
/// The copy or the pack fails; the message names which.
pub async fn prepare(
    project: &Path,
    dest: &Path,
    base: Option<Arc<Vec<u8>>>,
    start_dir: &Path,
) -> Result<Option<Start>, String> {
    let (source, target, start) = (
        project.to_path_buf(),
        dest.to_path_buf(),
        start_dir.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || {
        super::process::copy_tree(&source, &target)
            .map_err(|e| format!("cannot copy project {}: {e}", source.display()))?;
        let Some(base) = base else { return Ok(None) };
        let problem = |e: io::Error| format!("cannot apply the previous step's changes: {e}");
        let applied = apply(&target, &base).map_err(problem)?;
        fs::create_dir_all(&start).map_err(problem)?;
        apply(&start, &base).map_err(problem)?;
        Ok(Some(Start {
            dir: start,
            applied,
        }))
    })
    .await
    .map_err(|e| format!("workspace copy panicked: {e}"))?
}

/// What the agent itself changed, given `cumulative` (what differs between
/// the project and the workspace) and where the workspace started: a path
/// counts when the workspace's version differs from the start's (the
/// pack's version, or the project's where the pack did not touch it). A
/// failure to compare is logged and counts the path as changed.
pub async fn agent_changes(
    project: &Path,
    start: Option<&Start>,
    workspace: &Path,
    cumulative: &[String],
) -> Vec<String> {
    let Some(start) = start else {
        return cumulative.to_vec();
    };
    let candidates: BTreeSet<String> = cumulative
        .iter()
        .chain(&start.applied.written)
        .chain(&start.applied.deleted)
        .cloned()
        .collect();
    let (project, dir, workspace) = (
        project.to_path_buf(),
        start.dir.clone(),
        workspace.to_path_buf(),
    );
    let applied = start.applied.clone();
    let compared = tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .filter(|rel| {
                let before = if applied.written.contains(rel) {
                    Some(dir.join(rel))
                } else if applied.deleted.contains(rel) {
                    None
                } else {
                    Some(project.join(rel))
                };
                super::workspace::differs(before.as_deref(), &workspace.join(rel)).unwrap_or(true)
            })
            .collect::<Vec<_>>()
    })
    .await;
    compared.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "comparing the workspace with its start failed");
        cumulative.to_vec()
    })
}

/// The pack of a workspace after a clean run, for the next step; `None`
/// (said on `lines`) when it cannot be made or is over
/// [`MAX_PACKED_BYTES`].
pub async fn keep(
    workspace: &Path,
    changed: &[String],
    lines: &mpsc::Sender<OutputLine>,
) -> Option<Vec<u8>> {
    let (dir, list) = (workspace.to_path_buf(), changed.to_vec());
    let packed = tokio::task::spawn_blocking(move || pack(&dir, &list)).await;
    let problem = match packed {
        Ok(Ok(bytes)) if bytes.len() <= MAX_PACKED_BYTES => return Some(bytes),
        Ok(Ok(bytes)) => format!(
            "its changes pack to {:.1} MiB, over the {} MiB carried between workflow steps",
            bytes.len() as f64 / 1048576.0,
            MAX_PACKED_BYTES / 1048576
        ),
        Ok(Err(e)) if e.kind() == io::ErrorKind::FileTooLarge => e.to_string(),
        Ok(Err(e)) => format!("its changes cannot be packed: {e}"),
        Err(e) => format!("packing its changes failed: {e}"),
    };
    let _ = lines
        .send(OutputLine {
            stream: Stream::Note,
            text: format!("the workspace is not carried to the next step: {problem}"),
        })
        .await;
    None
}

/// `workspace/rel`, refusing anything but plain names (no `..`, no root).
fn inside(workspace: &Path, rel: &Path) -> io::Result<PathBuf> {
    if rel.as_os_str().is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("path {} leaves the workspace", rel.display()),
        ));
    }
    Ok(workspace.join(rel))
}

/// Whether a directory above `rel` in `root` is a symbolic link (checked
/// from the top down; a missing directory ends the walk: nothing is there).
fn under_link(root: &Path, rel: &Path) -> io::Result<bool> {
    let mut dir = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(false);
    };
    for component in parent.components() {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_symlink() => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Removes a deleted path and the directories its removal left empty.
fn remove(workspace: &Path, path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path)?,
        Ok(_) => fs::remove_file(path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == workspace || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::workspace::changed_files;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    #[test]
    fn a_pack_turns_a_copy_of_the_project_into_the_workspace() {
        let project = tempfile::tempdir().unwrap();
        write(project.path(), "keep.txt", "keep");
        write(project.path(), "src/lib.rs", "fn a() {}");
        write(project.path(), "gone/dir/file", "bye");
        write(project.path(), "was_file", "f");
        // The agent's workspace: a copy, then its edits.
        let work = tempfile::tempdir().unwrap();
        crate::runner::process::copy_tree(project.path(), work.path()).unwrap();
        write(work.path(), "src/lib.rs", "fn b() {}");
        write(work.path(), "src/new.rs", "new");
        fs::remove_dir_all(work.path().join("gone")).unwrap();
        fs::remove_file(work.path().join("was_file")).unwrap();
        write(work.path(), "was_file/inner.txt", "now a dir");
        fs::create_dir(work.path().join("empty")).unwrap();
        std::os::unix::fs::symlink("keep.txt", work.path().join("link")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        write(work.path(), "run.sh", "#!/bin/sh\n");
        fs::set_permissions(
            work.path().join("run.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let changed = changed_files(project.path(), work.path()).unwrap();
        let packed = pack(work.path(), &changed).unwrap();

        // The next step: a fresh copy plus the pack is the same workspace.
        let next = tempfile::tempdir().unwrap();
        crate::runner::process::copy_tree(project.path(), next.path()).unwrap();
        apply(next.path(), &packed).unwrap();
        assert!(changed_files(work.path(), next.path()).unwrap().is_empty());
        assert!(!next.path().join("gone").exists(), "emptied dirs go too");
        let mode = fs::metadata(next.path().join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_link(next.path().join("link")).unwrap(),
            Path::new("keep.txt")
        );
        // Applying twice (a step run again) changes nothing.
        apply(next.path(), &packed).unwrap();
        assert!(changed_files(work.path(), next.path()).unwrap().is_empty());
    }

    #[tokio::test]
    async fn what_the_agent_changed_is_told_from_what_it_was_given() {
        let project = tempfile::tempdir().unwrap();
        write(project.path(), "a.txt", "a");
        write(project.path(), "b.txt", "b");
        write(project.path(), "c.txt", "c");
        // The previous step changed a.txt, deleted b.txt, added new.txt.
        let prev = tempfile::tempdir().unwrap();
        crate::runner::process::copy_tree(project.path(), prev.path()).unwrap();
        write(prev.path(), "a.txt", "a2");
        fs::remove_file(prev.path().join("b.txt")).unwrap();
        write(prev.path(), "new.txt", "n");
        let packed = pack(
            prev.path(),
            &changed_files(project.path(), prev.path()).unwrap(),
        )
        .unwrap();

        let run = tempfile::tempdir().unwrap();
        let ws = run.path().join("workspace");
        let start = prepare(
            project.path(),
            &ws,
            Some(Arc::new(packed)),
            &run.path().join("start"),
        )
        .await
        .unwrap()
        .unwrap();
        let cumulative = |ws: &Path| changed_files(project.path(), ws).unwrap();
        // An agent that touches nothing changed nothing.
        let none = agent_changes(project.path(), Some(&start), &ws, &cumulative(&ws)).await;
        assert!(none.is_empty(), "{none:?}");
        // One that edits c.txt, restores b.txt and reverts a.txt changed those.
        write(&ws, "c.txt", "c2");
        write(&ws, "b.txt", "b");
        write(&ws, "a.txt", "a");
        let changed = agent_changes(project.path(), Some(&start), &ws, &cumulative(&ws)).await;
        assert_eq!(changed, ["a.txt", "b.txt", "c.txt"]);
        // Without a start, everything that differs from the project counts.
        let all = agent_changes(project.path(), None, &ws, &cumulative(&ws)).await;
        assert_eq!(all, ["c.txt", "new.txt"]);
    }

    #[test]
    fn an_empty_change_is_a_small_pack() {
        let work = tempfile::tempdir().unwrap();
        let packed = pack(work.path(), &[]).unwrap();
        assert!(packed.len() < 200, "{}", packed.len());
        apply(work.path(), &packed).unwrap();
    }

    #[test]
    fn paths_outside_the_workspace_are_refused() {
        let work = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        let list = "../escape\n";
        header.set_size(list.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, DELETED, list.as_bytes())
            .unwrap();
        let packed = tar.into_inner().unwrap().finish().unwrap();
        let err = apply(work.path(), &packed).unwrap_err();
        assert!(err.to_string().contains("leaves the workspace"), "{err}");
        assert!(apply(work.path(), b"not a pack").is_err());
    }

    #[test]
    fn a_directory_swapped_for_a_link_to_the_host_is_not_followed() {
        let host = tempfile::tempdir().unwrap();
        write(host.path(), "secret.txt", "HOST SECRET");
        write(host.path(), "lib.rs", "host lib");
        let project = tempfile::tempdir().unwrap();
        write(project.path(), "src/lib.rs", "fn a() {}");
        write(project.path(), "src/secret.txt", "project's");
        let workspace = tempfile::tempdir().unwrap();
        crate::runner::process::copy_tree(project.path(), workspace.path()).unwrap();
        // The agent replaces src/ with a link to a host directory.
        fs::remove_dir_all(workspace.path().join("src")).unwrap();
        std::os::unix::fs::symlink(host.path(), workspace.path().join("src")).unwrap();

        let changed = changed_files(project.path(), workspace.path()).unwrap();
        let packed = pack(workspace.path(), &changed).unwrap();
        // Nothing was read through the link.
        let mut text = Vec::new();
        GzDecoder::new(&packed[..]).read_to_end(&mut text).unwrap();
        assert!(
            !text.windows(11).any(|w| w == b"HOST SECRET"),
            "a host file went into the pack"
        );
        // The next step's copy: the link comes back, nothing is deleted or
        // written through it.
        let next = tempfile::tempdir().unwrap();
        crate::runner::process::copy_tree(project.path(), next.path()).unwrap();
        apply(next.path(), &packed).unwrap();
        assert!(
            fs::symlink_metadata(next.path().join("src"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_to_string(host.path().join("lib.rs")).unwrap(),
            "host lib"
        );
        assert_eq!(
            fs::read_to_string(host.path().join("secret.txt")).unwrap(),
            "HOST SECRET"
        );
    }

    #[test]
    fn a_pack_never_writes_through_a_link() {
        // A crafted pack: a link to a host directory, then a file under it.
        let host = tempfile::tempdir().unwrap();
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        tar.append_link(&mut link, "files/out", host.path())
            .unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(4);
        file.set_mode(0o644);
        file.set_cksum();
        tar.append_data(&mut file, "files/out/planted", &b"evil"[..])
            .unwrap();
        let packed = tar.into_inner().unwrap().finish().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let err = apply(workspace.path(), &packed).unwrap_err();
        assert!(err.to_string().contains("under a symbolic link"), "{err}");
        assert!(!host.path().join("planted").exists());
    }

    #[test]
    fn an_oversized_pack_stops_at_the_limit() {
        use rand::RngCore as _;
        let workspace = tempfile::tempdir().unwrap();
        // Random bytes do not compress: 9 MiB pack to over 8 MiB.
        let mut data = vec![0u8; 9 * 1024 * 1024];
        rand::rng().fill_bytes(&mut data);
        fs::write(workspace.path().join("big.bin"), &data).unwrap();
        let err = pack(workspace.path(), &["big.bin".to_owned()]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge, "{err}");
    }
}
