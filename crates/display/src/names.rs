/*!
The one rule for names that lockstep turns into file and folder names, thread names and log
prefixes: cluster, node, window, viewport and screen names in cluster files, and the process
names the daemon runs. A name that passes cannot leave a folder (`/`, `\`, `..`), hide
(a leading `.`), or forge a log line (control characters).
*/

/// Longest name accepted, in bytes.
pub const MAX_NAME: usize = 64;

/// Checks a name: 1 to [`MAX_NAME`] ASCII letters, digits, `-`, `_` or `.`, not starting with
/// `.`. `what` says which kind of name, for the message.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.' (not first)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_not_be_file_names_are_refused() {
        for bad in [
            "",
            ".hidden",
            "a/b",
            "v/../../escaped",
            "a\\b",
            "..",
            "a b",
            "line\nbreak",
            "nul\0",
            "@ctl",
            &"x".repeat(MAX_NAME + 1),
        ] {
            assert!(check_name("node", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            check_name("viewport", "v/../x").unwrap_err(),
            "viewport name \"v/../x\" must be 1 to 64 letters, digits, '-', '_' or '.' (not first)"
        );
        // Quoted as Rust quotes strings, a control character cannot break the line it is in.
        assert!(
            check_name("cluster", "a\nINFO forged")
                .unwrap_err()
                .starts_with("cluster name \"a\\nINFO forged\"")
        );
        for good in ["front", "wall-3_2", "v1.2", "x..", &"x".repeat(MAX_NAME)] {
            assert_eq!(check_name("node", good), Ok(()));
        }
    }
}
