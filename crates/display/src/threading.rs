/*!
Panda3D's `threading-model` string: which threads run the Cull and Draw stages (App always
runs on the main thread).

| string | App | Cull | Draw |
|---|---|---|---|
| `""` | main | main | main |
| `"Cull/Draw"` | main | thread `Cull` | thread `Draw` |
| `"/Draw"` | main | main | thread `Draw` |
| `"Cull"`, `"Cull/Cull"`, `"Cull/"` | main | thread `Cull` | thread `Cull` |

The names become the OS thread names. An empty name means "the same thread as the previous
stage".
*/
use std::fmt;
use std::str::FromStr;

/// Longest thread name Linux keeps (it truncates longer ones, which would hide them).
pub const MAX_THREAD_NAME: usize = 15;

/// Where the stages run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ThreadingModel {
    /// App, Cull and Draw on the main thread.
    #[default]
    SingleThreaded,
    /// App and Cull on the main thread, Draw on its own thread.
    DrawThread {
        /// Draw thread's name.
        draw: String,
    },
    /// App on the main thread, Cull and Draw together on one thread.
    CullDrawThread {
        /// The thread's name.
        name: String,
    },
    /// App, Cull and Draw on three threads.
    ThreeThreads {
        /// Cull thread's name.
        cull: String,
        /// Draw thread's name.
        draw: String,
    },
}

impl ThreadingModel {
    /// Number of threads used, the main thread included.
    pub fn thread_count(&self) -> usize {
        match self {
            ThreadingModel::SingleThreaded => 1,
            ThreadingModel::DrawThread { .. } | ThreadingModel::CullDrawThread { .. } => 2,
            ThreadingModel::ThreeThreads { .. } => 3,
        }
    }

    /// The thread name running Cull (`None`: the main thread).
    pub fn cull_thread(&self) -> Option<&str> {
        match self {
            ThreadingModel::SingleThreaded | ThreadingModel::DrawThread { .. } => None,
            ThreadingModel::CullDrawThread { name } => Some(name),
            ThreadingModel::ThreeThreads { cull, .. } => Some(cull),
        }
    }

    /// The thread name running Draw (`None`: the main thread).
    pub fn draw_thread(&self) -> Option<&str> {
        match self {
            ThreadingModel::SingleThreaded => None,
            ThreadingModel::DrawThread { draw } | ThreadingModel::ThreeThreads { draw, .. } => {
                Some(draw)
            }
            ThreadingModel::CullDrawThread { name } => Some(name),
        }
    }
}

impl FromStr for ThreadingModel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() > 2 {
            return Err(format!(
                "threading model '{s}' has {} '/': expected at most one, as in CULL/DRAW",
                parts.len() - 1
            ));
        }
        let check = |name: &str, stage: &str| -> Result<Option<String>, String> {
            if name.is_empty() {
                return Ok(None);
            }
            if name.trim().is_empty() {
                return Err(format!(
                    "threading model '{s}': the {stage} thread name is only whitespace"
                ));
            }
            if name.trim() != name {
                return Err(format!(
                    "threading model '{s}': the {stage} thread name '{name}' starts or ends with whitespace"
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(format!(
                    "threading model '{s}': the {stage} thread name contains a control character"
                ));
            }
            if name.len() > MAX_THREAD_NAME {
                return Err(format!(
                    "threading model '{s}': the {stage} thread name '{name}' is longer than {MAX_THREAD_NAME} bytes, the operating system's limit"
                ));
            }
            Ok(Some(name.to_string()))
        };
        let cull = check(parts[0], "Cull")?;
        let draw = match parts.get(1) {
            Some(d) => check(d, "Draw")?,
            None => None,
        };
        Ok(match (cull, draw) {
            (None, None) => ThreadingModel::SingleThreaded,
            (None, Some(draw)) => ThreadingModel::DrawThread { draw },
            (Some(name), None) => ThreadingModel::CullDrawThread { name },
            (Some(cull), Some(draw)) if cull == draw => {
                ThreadingModel::CullDrawThread { name: cull }
            }
            (Some(cull), Some(draw)) => ThreadingModel::ThreeThreads { cull, draw },
        })
    }
}

impl fmt::Display for ThreadingModel {
    /// The canonical string: parsing it gives the same model.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadingModel::SingleThreaded => Ok(()),
            ThreadingModel::DrawThread { draw } => write!(f, "/{draw}"),
            ThreadingModel::CullDrawThread { name } => write!(f, "{name}"),
            ThreadingModel::ThreeThreads { cull, draw } => write!(f, "{cull}/{draw}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> ThreadingModel {
        s.parse().unwrap()
    }

    #[test]
    fn pandas_grammar() {
        assert_eq!(m(""), ThreadingModel::SingleThreaded);
        assert_eq!(
            m("Cull/Draw"),
            ThreadingModel::ThreeThreads {
                cull: "Cull".into(),
                draw: "Draw".into()
            }
        );
        assert_eq!(
            m("/Draw"),
            ThreadingModel::DrawThread {
                draw: "Draw".into()
            }
        );
        for s in ["Cull", "Cull/Cull", "Cull/"] {
            assert_eq!(
                m(s),
                ThreadingModel::CullDrawThread {
                    name: "Cull".into()
                },
                "{s}"
            );
        }
        assert_eq!(m("/"), ThreadingModel::SingleThreaded);
        for s in ["", "Cull/Draw", "/Draw", "Cull"] {
            assert_eq!(m(s).to_string(), s);
        }
        assert_eq!(m("Cull/Draw").thread_count(), 3);
        assert_eq!(m("/Draw").cull_thread(), None);
    }

    #[test]
    fn malformed_strings_are_explained() {
        let e = |s: &str| ThreadingModel::from_str(s).unwrap_err();
        assert!(
            e("a/b/c").contains("has 2 '/': expected at most one"),
            "{}",
            e("a/b/c")
        );
        assert!(e(" /Draw").contains("Cull thread name is only whitespace"));
        assert!(e("Cull/  ").contains("Draw thread name is only whitespace"));
        assert!(e("Cull /Draw").contains("'Cull ' starts or ends with whitespace"));
        assert!(e("averyveryverylongname").contains("longer than 15 bytes"));
        assert!(e("a\tb").contains("control character"));
    }
}
