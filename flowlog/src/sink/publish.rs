//! Crash-safe publication of a file: it is written under a hidden temporary name in
//! its final directory, then synced, renamed into place and the directory synced, so
//! a reader never sees half a file and a crash leaves at most a stray temporary.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// A file being written that is not yet visible under its final name.
pub(crate) struct Unpublished {
    tmp: PathBuf,
    dest: PathBuf,
}

impl Unpublished {
    /// Creates the directories and the temporary file `.NAME.tmp` beside `dest`.
    pub(crate) fn create(dest: PathBuf) -> io::Result<(Self, File)> {
        let dir = dest.parent().ok_or_else(|| io::Error::other("file path has no directory"))?;
        let name =
            dest.file_name().and_then(|n| n.to_str()).ok_or_else(|| io::Error::other("file path has no name"))?;
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        Ok((Unpublished { tmp, dest }, file))
    }

    /// Syncs `file` and renames it to its final name; on failure the temporary is
    /// removed. Then syncs the directory: an error there is returned as
    /// `Ok(Err(..))`, since the file is in place and readable all the same.
    pub(crate) fn publish(self, file: File) -> io::Result<io::Result<()>> {
        let placed = file.sync_all().and_then(|()| {
            drop(file);
            fs::rename(&self.tmp, &self.dest)
        });
        if let Err(e) = placed {
            self.discard();
            return Err(e);
        }
        Ok(sync_dir(self.dest.parent().unwrap_or(Path::new("."))))
    }

    /// Gives the file up; a failure to remove it only leaves a hidden temporary.
    pub(crate) fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Makes a rename or a new entry in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hidden_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/file.log.gz");
        let (u, mut f) = Unpublished::create(dest.clone()).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!dest.exists());
        assert!(dir.path().join("a/b/.file.log.gz.tmp").exists());
        u.publish(f).unwrap().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"hello");
        assert!(!dir.path().join("a/b/.file.log.gz.tmp").exists());

        let dest2 = dir.path().join("a/b/other.log.gz");
        let (u, _f) = Unpublished::create(dest2.clone()).unwrap();
        u.discard();
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 1);
    }
}
