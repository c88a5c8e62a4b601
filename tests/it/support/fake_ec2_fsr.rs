//! A fake EC2 endpoint for the three Fast Snapshot Restore calls moto lacks
//! (`EnableFastSnapshotRestores`, `DisableFastSnapshotRestores`, `DescribeFastSnapshotRestores`):
//! a minimal HTTP/1.1 server on a free loopback port speaking the EC2 query protocol — a
//! form-encoded `POST /` with `Action=…`, answered with the XML shapes of the EC2 API reference
//! (`successful`/`unsuccessful` item sets, `fastSnapshotRestoreStateErrorSet` with per-zone
//! `error` `code`/`message`, `fastSnapshotRestoreSet` for Describe) and errors as
//! `<Response><Errors><Error><Code>`. `DryRun=true` answers `DryRunOperation` (HTTP 412), or
//! `UnauthorizedOperation` (403) when denied. `SigV4` signatures are not checked.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct State {
    /// (snapshot, zone) → state word.
    fsr: BTreeMap<(String, String), String>,
    /// Zones whose enable is refused: zone → (code, message).
    refuse: BTreeMap<String, (String, String)>,
    deny_dry_run: bool,
    requests: Vec<BTreeMap<String, String>>,
}

/// The fake endpoint; stops when dropped.
pub struct FakeEc2Fsr {
    port: u16,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeEc2Fsr {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeEc2Fsr {
    /// Starts on a free loopback port.
    pub async fn start() -> FakeEc2Fsr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, s.clone()));
            }
        });
        FakeEc2Fsr { port, state, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets the state EC2 reports for `snapshot` in `zone`.
    pub fn set_state(&self, snapshot: &str, zone: &str, state: &str) {
        self.state.lock().unwrap().fsr.insert((snapshot.to_owned(), zone.to_owned()), state.to_owned());
    }

    /// Refuses enables in `zone` with an `unsuccessful` item carrying `code`.
    pub fn refuse(&self, zone: &str, code: &str, message: &str) {
        self.state.lock().unwrap().refuse.insert(zone.to_owned(), (code.to_owned(), message.to_owned()));
    }

    /// Answers dry runs with `UnauthorizedOperation`.
    pub fn deny_dry_runs(&self) {
        self.state.lock().unwrap().deny_dry_run = true;
    }

    /// The form parameters of every request so far.
    pub fn requests(&self) -> Vec<BTreeMap<String, String>> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn values(p: &BTreeMap<String, String>, prefix: &str) -> Vec<String> {
    p.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v.clone()).collect()
}

fn item(snapshot: &str, zone: &str, state: &str) -> String {
    format!(
        "<item><snapshotId>{snapshot}</snapshotId><availabilityZone>{zone}</availabilityZone><state>{state}</state>\
         <stateTransitionReason>Client.UserInitiated</stateTransitionReason><ownerId>123456789012</ownerId>\
         <enablingTime>2026-12-04T10:00:00.000Z</enablingTime></item>"
    )
}

fn error(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
             </Error></Errors><RequestID>fake-request</RequestID></Response>"
        ),
    )
}

fn answer(state: &Arc<Mutex<State>>, p: &BTreeMap<String, String>) -> (u16, String) {
    let mut st = state.lock().unwrap();
    st.requests.push(p.clone());
    let action = p.get("Action").cloned().unwrap_or_default();
    if p.get("DryRun").map(String::as_str) == Some("true") {
        return if st.deny_dry_run {
            error(403, "UnauthorizedOperation", "You are not authorized to perform this operation.")
        } else {
            error(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
        };
    }
    let snapshots = values(p, "SourceSnapshotId.");
    let zones = values(p, "AvailabilityZone.");
    let body = match action.as_str() {
        "EnableFastSnapshotRestores" | "DisableFastSnapshotRestores" => {
            let enable = action.starts_with("Enable");
            let (mut ok, mut bad) = (String::new(), String::new());
            for s in &snapshots {
                let mut errors = String::new();
                for z in &zones {
                    if enable && let Some((code, message)) = st.refuse.get(z) {
                        let _ = write!(
                            errors,
                            "<item><availabilityZone>{z}</availabilityZone><error><code>{code}</code>\
                             <message>{message}</message></error></item>"
                        );
                        continue;
                    }
                    let key = (s.clone(), z.clone());
                    let now = st.fsr.get(&key).cloned().unwrap_or_else(|| "disabled".into());
                    let next = match (enable, now.as_str()) {
                        (true, "disabled" | "disabling") => "enabling".to_owned(),
                        (true, other) => other.to_owned(),
                        (false, "disabled") => "disabled".to_owned(),
                        (false, _) => "disabling".to_owned(),
                    };
                    st.fsr.insert(key, next.clone());
                    ok.push_str(&item(s, z, &next));
                }
                if !errors.is_empty() {
                    let _ = write!(
                        bad,
                        "<item><snapshotId>{s}</snapshotId><fastSnapshotRestoreStateErrorSet>{errors}\
                         </fastSnapshotRestoreStateErrorSet></item>"
                    );
                }
            }
            format!("<successful>{ok}</successful><unsuccessful>{bad}</unsuccessful>")
        }
        "DescribeFastSnapshotRestores" => {
            let wanted = values(p, "Filter.1.Value.");
            let items: String = st
                .fsr
                .iter()
                .filter(|((s, _), _)| wanted.is_empty() || wanted.contains(s))
                .map(|((s, z), state)| item(s, z, state))
                .collect();
            format!("<fastSnapshotRestoreSet>{items}</fastSnapshotRestoreSet>")
        }
        other => return error(400, "InvalidAction", &format!("the fake does not implement {other}")),
    };
    (
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>fake-request</requestId>{body}</{action}Response>"
        ),
    )
}

async fn connection(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
        buf.drain(..end + 4 + length);
        let params: BTreeMap<String, String> =
            body.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect();
        let (status, xml) = answer(&state, &params);
        let reason = if status == 200 { "OK" } else { "Error" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{xml}",
            xml.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
