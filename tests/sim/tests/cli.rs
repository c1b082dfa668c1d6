//! The `koppel-sim` command: help, a clear refusal of an unknown Shopware version, and both
//! simulators started on a free port, answering a request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

#[test]
fn help_lists_both_simulators_and_bad_versions_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_koppel-sim"))
        .arg("--help")
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        text.contains("mplus") && text.contains("shopware"),
        "{text}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_koppel-sim"))
        .args(["shopware", "--version", "5.9"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("unknown Shopware version \"5.9\"; use 6.4, 6.5, 6.6 or 6.7"),
        "{text}"
    );
}

/// Kills the simulator when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `koppel-sim` with `args` on port 0; returns the process and the first line it
/// printed (the one with the URL).
fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_koppel-sim"))
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn koppel-sim");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the first line");
    (running, line)
}

/// `127.0.0.1:PORT` from a line like `... on http://127.0.0.1:PORT  (...)`.
fn address(line: &str) -> String {
    let start = line
        .find("http://")
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        + "http://".len();
    let rest = &line[start..];
    let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let address = rest[..end].to_owned();
    let port: u16 = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_ne!(port, 0, "the real port is printed, not 0");
    address
}

/// One HTTP/1.1 request; returns the whole answer (the server closes the connection).
fn request(address: &str, method: &str, path: &str, headers: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{headers}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn the_mplus_simulator_starts_on_a_free_port_and_answers() {
    let (_sim, line) = spawn(&[
        "mplus",
        "--products",
        "3",
        "--orders",
        "2",
        "--secret",
        "s3",
    ]);
    assert!(line.contains("MplusKASSA simulator on"), "{line}");
    let address = address(&line);
    let envelope = "<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" \
                    xmlns:ns1=\"urn:mplusqapi\"><SOAP-ENV:Body><ns1:getApiVersion/>\
                    </SOAP-ENV:Body></SOAP-ENV:Envelope>";
    let answer = request(
        &address,
        "POST",
        "/?ident=koppel&secret=s3",
        "Content-Type: text/xml; charset=utf-8\r\n",
        envelope,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("getApiVersionResponse"), "{answer}");
    assert!(
        answer.contains("<ns:majorNumber>67</ns:majorNumber>"),
        "{answer}"
    );
}

#[test]
fn the_shopware_simulator_starts_on_a_free_port_and_answers() {
    let (_sim, line) = spawn(&[
        "shopware",
        "--version",
        "6.5",
        "--products",
        "3",
        "--customers",
        "2",
    ]);
    assert!(line.contains("Shopware 6.5"), "{line}");
    let address = address(&line);
    let field = |name: &str| {
        let at = line
            .find(name)
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            + name.len();
        line[at..]
            .trim_start()
            .split(|c: char| c == ',' || c == ')' || c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let body = format!(
        "{{\"grant_type\":\"client_credentials\",\"client_id\":\"{}\",\"client_secret\":\"{}\"}}",
        field("client id"),
        field("secret")
    );
    let answer = request(
        &address,
        "POST",
        "/api/oauth/token",
        "Content-Type: application/json\r\n",
        &body,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let token = answer
        .split("\"access_token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no token in {answer}"));
    // --customers seeded two.
    let answer = request(
        &address,
        "POST",
        "/api/search-ids/customer",
        &format!(
            "Content-Type: application/json\r\nAccept: application/json\r\n\
             Authorization: Bearer {token}\r\n"
        ),
        "{\"total-count-mode\":1}",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"total\":2"), "{answer}");
}
