//! The SMTP client against a fake server (a tokio listener speaking just enough SMTP,
//! optionally with STARTTLS using a throwaway certificate from `openssl`).

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{dot_stuff, parse_go_duration};
use crate::hooks::actions::test_support::{ActionOutcome, UNUSED_ORIGIN, run_shoutrrr};

#[derive(Default, Clone)]
struct Options {
    offer_auth: bool,
    tls: Option<tokio_rustls::TlsAcceptor>,
    reject_recipient: Option<String>,
}

#[derive(Default)]
struct Recorded {
    /// Commands as received (AUTH payloads decoded, DATA contents left out).
    commands: Vec<String>,
    /// Each DATA section as received on the wire (dot-stuffed, CRLF).
    mails: Vec<String>,
}

struct FakeServer {
    port: u16,
    recorded: Arc<Mutex<Recorded>>,
}

impl FakeServer {
    async fn start(options: Options) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let recorded = Arc::new(Mutex::new(Recorded::default()));
        let state = recorded.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, options) = (state.clone(), options.clone());
                tokio::spawn(async move {
                    socket_session(socket, options, state).await;
                });
            }
        });
        FakeServer { port, recorded }
    }

    fn commands(&self) -> Vec<String> {
        self.recorded.lock().unwrap().commands.clone()
    }

    fn mails(&self) -> Vec<String> {
        self.recorded.lock().unwrap().mails.clone()
    }
}

async fn socket_session(
    socket: tokio::net::TcpStream,
    options: Options,
    state: Arc<Mutex<Recorded>>,
) {
    let mut io = BufReader::new(socket);
    io.get_mut()
        .write_all(b"220 fake.test ESMTP ready\r\n")
        .await
        .unwrap();
    if serve(&mut io, &options, &state, false).await == Outcome::StartTls {
        let acceptor = options.tls.clone().unwrap();
        let tls = acceptor.accept(io.into_inner()).await.unwrap();
        let mut io = BufReader::new(tls);
        serve(&mut io, &options, &state, true).await;
    }
}

#[derive(PartialEq)]
enum Outcome {
    Closed,
    StartTls,
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    options: &Options,
    state: &Arc<Mutex<Recorded>>,
    tls: bool,
) -> Outcome {
    let b64 = |s: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .unwrap(),
        )
        .unwrap()
    };
    loop {
        let Some(line) = read_line(io).await else {
            return Outcome::Closed;
        };
        let upper = line.to_ascii_uppercase();
        let (record, reply): (String, String) = if upper.starts_with("EHLO") {
            let mut reply = "250-fake.test\r\n".to_string();
            if options.tls.is_some() && !tls {
                reply.push_str("250-STARTTLS\r\n");
            }
            if options.offer_auth {
                reply.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            reply.push_str("250 8BITMIME\r\n");
            (line.clone(), reply)
        } else if upper == "STARTTLS" {
            write(io, "220 go ahead\r\n").await;
            state.lock().unwrap().commands.push(line);
            return Outcome::StartTls;
        } else if let Some(payload) = line.strip_prefix("AUTH PLAIN ") {
            (
                format!("AUTH PLAIN {:?}", b64(payload)),
                "235 accepted\r\n".into(),
            )
        } else if upper == "AUTH LOGIN" {
            write(io, "334 VXNlcm5hbWU6\r\n").await;
            let user = b64(&read_line(io).await.unwrap());
            write(io, "334 UGFzc3dvcmQ6\r\n").await;
            let password = b64(&read_line(io).await.unwrap());
            (
                format!("AUTH LOGIN {user:?} {password:?}"),
                "235 accepted\r\n".into(),
            )
        } else if upper.starts_with("RCPT TO:")
            && options
                .reject_recipient
                .as_ref()
                .is_some_and(|r| line.contains(r.as_str()))
        {
            (line.clone(), "550 5.1.1 no such user\r\n".into())
        } else if upper == "DATA" {
            write(io, "354 end with <CRLF>.<CRLF>\r\n").await;
            let mut mail = String::new();
            loop {
                let mut raw = String::new();
                io.read_line(&mut raw).await.unwrap();
                if raw == ".\r\n" {
                    break;
                }
                mail.push_str(&raw);
            }
            state.lock().unwrap().mails.push(mail);
            (line.clone(), "250 queued\r\n".into())
        } else if upper == "QUIT" {
            write(io, "221 bye\r\n").await;
            state.lock().unwrap().commands.push(line);
            return Outcome::Closed;
        } else {
            (line.clone(), "250 ok\r\n".into())
        };
        state.lock().unwrap().commands.push(if tls {
            format!("[tls] {record}")
        } else {
            record
        });
        write(io, &reply).await;
    }
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>) -> Option<String> {
    let mut line = String::new();
    match io.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
    }
}

async fn write<S: AsyncRead + AsyncWrite + Unpin>(io: &mut BufReader<S>, text: &str) {
    io.get_mut().write_all(text.as_bytes()).await.unwrap();
}

async fn send(url: String, template: &str) -> ActionOutcome {
    run_shoutrrr(&url, template, UNUSED_ORIGIN).await
}

#[tokio::test]
async fn delivers_one_mail_per_recipient_without_auth() {
    let server = FakeServer::start(Options::default()).await;
    let (result, log) = send(
        format!(
            "smtp://127.0.0.1:{}/?from=backrest@example.com&fromname=Backrest&to=a@example.com,b+tag@example.com&subject=Backup%20done",
            server.port
        ),
        "Hello\n.hidden dot line\nBye",
    )
    .await;
    result.unwrap();
    assert_eq!(
        server.commands(),
        vec![
            "EHLO localhost",
            "MAIL FROM:<backrest@example.com>",
            "RCPT TO:<a@example.com>",
            "DATA",
            "MAIL FROM:<backrest@example.com>",
            "RCPT TO:<b+tag@example.com>",
            "DATA",
            "QUIT",
        ]
    );
    let mails = server.mails();
    assert_eq!(mails.len(), 2);
    let (headers, body) = mails[0].split_once("\r\n\r\n").unwrap();
    assert!(
        headers.starts_with("Subject: Backup done\r\nDate: "),
        "{headers}"
    );
    assert!(headers.contains("\r\nTo: a@example.com\r\n"), "{headers}");
    assert!(
        headers.contains("\r\nFrom: Backrest <backrest@example.com>\r\n"),
        "{headers}"
    );
    assert!(
        headers.ends_with("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"UTF-8\""),
        "{headers}"
    );
    assert_eq!(body, "Hello\r\n..hidden dot line\r\nBye\r\n");
    assert!(mails[1].contains("\r\nTo: b+tag@example.com\r\n"));
    assert!(
        log.contains(
            &"Warning: the SMTP server does not offer STARTTLS; the connection is unencrypted"
                .to_string()
        )
    );
    assert!(
        log.contains(&"Mail sent to a@example.com, b+tag@example.com".to_string()),
        "{log:?}"
    );
}

#[tokio::test]
async fn authenticates_with_plain_and_login() {
    let server = FakeServer::start(Options {
        offer_auth: true,
        ..Default::default()
    })
    .await;
    let (result, _) = send(
        format!(
            "smtp://bob:s3cret@127.0.0.1:{}/?from=f@x.test&to=t@x.test&clienthost=backrest.test",
            server.port
        ),
        "x",
    )
    .await;
    result.unwrap();
    let commands = server.commands();
    assert_eq!(commands[0], "EHLO backrest.test");
    assert_eq!(commands[1], "AUTH PLAIN \"\\0bob\\0s3cret\"");

    let server = FakeServer::start(Options {
        offer_auth: true,
        ..Default::default()
    })
    .await;
    let (result, _) = send(
        format!(
            "smtp://bob:s3cret@127.0.0.1:{}/?from=f@x.test&to=t@x.test&auth=Login",
            server.port
        ),
        "x",
    )
    .await;
    result.unwrap();
    assert_eq!(server.commands()[1], "AUTH LOGIN \"bob\" \"s3cret\"");
    assert_eq!(server.mails().len(), 1);
}

#[tokio::test]
async fn a_rejected_recipient_is_reported_and_the_others_still_get_mail() {
    let server = FakeServer::start(Options {
        offer_auth: true,
        reject_recipient: Some("nobody@".into()),
        ..Default::default()
    })
    .await;
    let (result, _) = send(
        format!(
            "smtp://bob:hunter22@127.0.0.1:{}/?from=f@x.test&to=nobody@x.test,t@x.test",
            server.port
        ),
        "x",
    )
    .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.message(),
        "shoutrrr: smtp: failed to send to nobody@x.test: RCPT TO failed: the server answered 550 5.1.1 no such user"
    );
    assert!(server.commands().contains(&"RSET".to_string()));
    assert_eq!(server.mails().len(), 1);
}

#[tokio::test]
async fn credentials_are_never_sent_in_clear_text_to_a_remote_server() {
    // 127.0.0.2 is loopback on Linux but not "localhost" by name, like a remote server.
    let Ok(listener) = TcpListener::bind("127.0.0.2:0").await else {
        panic!("127.0.0.2 must be bindable (Linux loopback)");
    };
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        socket_session(
            socket,
            Options {
                offer_auth: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await;
    });
    let (result, _) = send(
        format!("smtp://bob:s3cret@127.0.0.2:{port}/?from=f@x.test&to=t@x.test"),
        "x",
    )
    .await;
    assert_eq!(
        result.unwrap_err().message(),
        "shoutrrr: smtp: refusing to send credentials over an unencrypted connection (the server offers no TLS)"
    );
}

/// A self-signed certificate for `localhost` made by the openssl CLI.
fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl CLI is needed for the STARTTLS test");
    assert!(status.success());
    let certs = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn starttls_upgrades_before_authenticating() {
    let server = FakeServer::start(Options {
        offer_auth: true,
        tls: Some(tls_acceptor()),
        ..Default::default()
    })
    .await;
    let (result, log) = send(
        format!("smtp://bob:s3cret@localhost:{}/?from=f@x.test&to=t@x.test&skiptlsverify=yes&encryption=explicit", server.port),
        "über",
    )
    .await;
    result.unwrap();
    assert_eq!(
        server.commands(),
        vec![
            "EHLO localhost",
            "STARTTLS",
            "[tls] EHLO localhost",
            "[tls] AUTH PLAIN \"\\0bob\\0s3cret\"",
            "[tls] MAIL FROM:<f@x.test>",
            "[tls] RCPT TO:<t@x.test>",
            "[tls] DATA",
            "QUIT",
        ]
    );
    assert!(server.mails()[0].contains("Content-Transfer-Encoding: 8bit\r\n\r\nüber\r\n"));
    assert!(log.iter().all(|l| !l.contains("Warning")), "{log:?}");
}

#[tokio::test]
async fn starttls_checks_the_certificate_unless_told_not_to() {
    let server = FakeServer::start(Options {
        tls: Some(tls_acceptor()),
        ..Default::default()
    })
    .await;
    let (result, _) = send(
        format!(
            "smtp://localhost:{}/?from=f@x.test&to=t@x.test",
            server.port
        ),
        "x",
    )
    .await;
    let message = result.unwrap_err().message().to_string();
    assert!(
        message.starts_with("shoutrrr: smtp: TLS handshake: "),
        "{message}"
    );
}

#[tokio::test]
async fn explicit_tls_requires_starttls() {
    let server = FakeServer::start(Options::default()).await;
    let (result, _) = send(
        format!(
            "smtp://127.0.0.1:{}/?from=f@x.test&to=t@x.test&encryption=ExplicitTLS",
            server.port
        ),
        "x",
    )
    .await;
    assert_eq!(
        result.unwrap_err().message(),
        "shoutrrr: smtp: the server does not support STARTTLS"
    );
}

#[tokio::test]
async fn bad_urls_are_explained() {
    let (result, _) = send("smtp://mail.test/?to=t@x.test".into(), "x").await;
    assert_eq!(
        result.unwrap_err().message(),
        "shoutrrr: smtp: the URL names no sender (?from=…)"
    );
    let (result, _) = send("smtp://mail.test/?from=f@x.test".into(), "x").await;
    assert_eq!(
        result.unwrap_err().message(),
        "shoutrrr: smtp: the URL names no recipients (?to=a@example.com,b@example.com)"
    );
    let (result, _) = send(
        "smtp://mail.test/?from=f@x.test&to=t@x.test&auth=CRAMMD5".into(),
        "x",
    )
    .await;
    assert_eq!(
        result.unwrap_err().message(),
        "shoutrrr: smtp: auth=CRAMMD5 is not supported by backrest-rs (use Plain or Login over TLS)"
    );
}

#[test]
fn helpers() {
    assert_eq!(
        dot_stuff("a\r\n.b\r\n..c\r\n"),
        b"a\r\n..b\r\n...c\r\n".to_vec()
    );
    assert_eq!(
        parse_go_duration("1m30s"),
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        parse_go_duration("500ms"),
        Some(std::time::Duration::from_millis(500))
    );
    assert_eq!(parse_go_duration("10"), None);
}
