use std::path::Path;

/// Set (to anything) to rewrite golden files from what the tests render;
/// review the diff.
pub const UPDATE_VAR: &str = "STRATUS_UPDATE_GOLDEN";

/// Asserts `actual` equals the file `name` under `dir`, first rewriting the
/// file when [`UPDATE_VAR`] is set.
pub fn assert_golden(dir: impl AsRef<Path>, name: &str, actual: &str) {
    let path = dir.as_ref().join(name);
    if std::env::var_os(UPDATE_VAR).is_some() {
        std::fs::create_dir_all(path.parent().expect("a golden file has a folder"))
            .expect("golden folder");
        std::fs::write(&path, actual).expect("write golden");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with {UPDATE_VAR}=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

/// Asserts `$actual` equals the file `$name` under the calling crate's
/// `tests/golden`; see [`assert_golden`].
#[macro_export]
macro_rules! golden {
    ($name:expr, $actual:expr $(,)?) => {
        $crate::golden::assert_golden(
            ::std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
            $name,
            $actual,
        )
    };
}
