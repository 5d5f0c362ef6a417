//! What `herd run` settles from its flags and surroundings before a trial:
//! where the child binaries are and where the report page goes. Each error
//! is one line for the binary to print after `herd: ` (as `TrialConfig::check`).

use std::path::{Path, PathBuf};

/// The binaries a trial starts, which sit beside `herd`.
const CHILDREN: [&str; 2] = ["hub", "leaf-agent"];

/// The directory of the running `herd`, once it is known to hold the `hub`
/// and `leaf-agent` binaries the trial starts.
pub fn bin_dir() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the herd executable: {e}"))?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    children_in(&dir)?;
    Ok(dir)
}

/// Checks that `dir` holds every child binary.
fn children_in(dir: &Path) -> Result<(), String> {
    match CHILDREN.iter().find(|name| !dir.join(name).is_file()) {
        None => Ok(()),
        Some(name) => Err(format!(
            "{name} not found beside herd in {}; build all binaries (cargo build --release)",
            dir.display()
        )),
    }
}

/// Where the trial's report page goes: `--report` as given, else
/// `report.html` in the `--workdir`; `None` with neither. A given page's
/// directory must exist (the work directory is made by the trial).
pub fn report_page(
    report: Option<PathBuf>,
    workdir: Option<&Path>,
) -> Result<Option<PathBuf>, String> {
    if let Some(dir) = report.as_ref().and_then(|p| p.parent()) {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(format!(
                "cannot write the report into {}: no such directory",
                dir.display()
            ));
        }
    }
    Ok(report.or_else(|| workdir.map(|dir| dir.join("report.html"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_child_binary_must_sit_beside_herd() {
        let dir = tempfile::tempdir().unwrap();
        let err = children_in(dir.path()).unwrap_err();
        assert!(err.starts_with("hub not found beside herd in "), "{err}");
        std::fs::write(dir.path().join("hub"), "").unwrap();
        let err = children_in(dir.path()).unwrap_err();
        assert!(err.starts_with("leaf-agent not found"), "{err}");
        std::fs::write(dir.path().join("leaf-agent"), "").unwrap();
        assert_eq!(children_in(dir.path()), Ok(()));
    }

    #[test]
    fn the_report_page_defaults_into_the_workdir_and_needs_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        assert_eq!(
            report_page(None, Some(&work)),
            Ok(Some(work.join("report.html")))
        );
        assert_eq!(report_page(None, None), Ok(None));
        let given = dir.path().join("r.html");
        assert_eq!(
            report_page(Some(given.clone()), Some(&work)),
            Ok(Some(given))
        );
        assert_eq!(
            report_page(Some("r.html".into()), None),
            Ok(Some("r.html".into()))
        );
        let err = report_page(Some(dir.path().join("no/r.html")), None).unwrap_err();
        assert!(err.ends_with("no: no such directory"), "{err}");
    }
}
