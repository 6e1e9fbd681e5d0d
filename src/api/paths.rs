//! `PathAutocomplete`: the entries of a directory on the server, for the path
//! fields of the plan and restore forms.

use std::io::ErrorKind;

use crate::connect::ConnectError;
use crate::pb::types;

/// The names (not paths) of every entry of `req.value`, files and
/// directories alike, sorted by name (byte order, as Go's `os.ReadDir`). A
/// directory that does not exist gives an empty list, as in Backrest (the UI
/// asks while the user is still typing); any other failure — not a directory,
/// permission denied — is `unknown` with the path and the reason. Names that
/// are not UTF-8 are sent with U+FFFD in place of the bad bytes.
pub async fn path_autocomplete(req: types::StringValue) -> Result<types::StringList, ConnectError> {
    let dir = req.value;
    tokio::task::spawn_blocking(move || list(&dir))
        .await
        .map_err(|e| ConnectError::internal(format!("directory listing failed: {e}")))?
}

fn list(dir: &str) -> Result<types::StringList, ConnectError> {
    let fail =
        |e: std::io::Error| ConnectError::unknown(format!("cannot list {dir:?}: {}", describe(&e)));
    let entries = match std::fs::read_dir(dir) {
        Ok(it) => it,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(types::StringList::default()),
        Err(e) => return Err(fail(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        names.push(entry.map_err(fail)?.file_name());
    }
    names.sort_by(|a, b| a.as_encoded_bytes().cmp(b.as_encoded_bytes()));
    Ok(types::StringList {
        values: names
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
    })
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotADirectory => "not a directory".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_sorted_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("b-dir")).unwrap();
        std::fs::write(d.path().join("a.txt"), "").unwrap();
        std::fs::write(d.path().join("C"), "").unwrap();
        let got = list(d.path().to_str().unwrap()).unwrap().values;
        assert_eq!(got, ["C", "a.txt", "b-dir"]);
        assert!(
            list(d.path().join("missing").to_str().unwrap())
                .unwrap()
                .values
                .is_empty()
        );
        assert!(list("").unwrap().values.is_empty());
        let e = list(d.path().join("a.txt").to_str().unwrap()).unwrap_err();
        assert_eq!(e.code, crate::connect::Code::Unknown);
        assert!(
            e.message.contains("a.txt") && e.message.contains("not a directory"),
            "{}",
            e.message
        );
    }
}
