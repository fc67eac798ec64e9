//! Crash-safe persistence of the config: write a temporary file, fsync it, rename it
//! over the old one, fsync the directory. A crash at any moment leaves either the old
//! or the new document, never a mix; a change is acknowledged only after this.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::model::Config;

pub const CONFIG_FILE: &str = "config.json";

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (and creates, mode 0700) the state directory.
    pub fn open(dir: &Path) -> io::Result<Store> {
        fs::create_dir_all(dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        // A temporary file left by a crash is an unacknowledged change: drop it.
        let _ = fs::remove_file(dir.join(format!(".{CONFIG_FILE}.tmp")));
        Ok(Store { dir: dir.to_path_buf() })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// The last saved config, if any.
    pub fn load(&self) -> io::Result<Option<Config>> {
        match fs::read_to_string(self.path()) {
            Ok(text) => Config::from_json(&text)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", self.path().display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `config` durably (returns only once it would survive a crash).
    pub fn save(&self, config: &Config) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{CONFIG_FILE}.tmp"));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
        f.write_all(config.to_json().as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("vpcgate-store-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        assert!(store.load().unwrap().is_none());
        let mut cfg = Config::default();
        cfg.appliance.region = "eu-west-1".into();
        store.save(&cfg).unwrap();
        assert_eq!(store.load().unwrap(), Some(cfg));
        assert!(!dir.join(".config.json.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
