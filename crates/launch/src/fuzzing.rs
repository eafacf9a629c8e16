/*!
The fuzz entry point of the launcher protocol (`fuzz/`), also replayed by a stable test:
whatever the bytes, frames decoded as a daemon's requests and a launcher's replies, and the
requests' paths and names checked as the daemon checks them, end in values or errors.
*/
use lockstep_wire::Decoder;

use crate::protocol::{MAX_FRAME, Reply, Request, check_name, check_relative_path};

/// Decodes `data` as a stream of requests (as a daemon reads it) and of replies (as a
/// launcher reads it), checking each request's names and paths; returns how many decoded.
pub fn decode_launch(data: &[u8]) -> usize {
    let mut decoded = 0;
    let mut requests = Decoder::new(MAX_FRAME);
    requests.push(data);
    while let Ok(Some(req)) = requests.next_as::<Request>() {
        decoded += 1;
        match req {
            Request::Manifest { cluster, files } => {
                let _ = check_name("cluster", &cluster);
                for f in files.iter().take(64) {
                    let _ = check_relative_path(&f.path);
                }
            }
            Request::Start {
                cluster,
                name,
                args,
                ..
            } => {
                let _ = check_name("cluster", &cluster);
                let _ = check_name("process", &name);
                let root = std::path::Path::new("/nonexistent/lockstep-fuzz");
                let _ = crate::daemon::confine::check_role_args(&args, root, &[root.into()]);
            }
            _ => {}
        }
    }
    let mut replies = Decoder::new(MAX_FRAME);
    replies.push(data);
    while let Ok(Some(_)) = replies.next_as::<Reply>() {
        decoded += 1;
    }
    decoded
}
