//! shoutrrr's e-mail service with a small SMTP client of our own:
//! `smtp://[user:pass@]host[:port]/?from=…&to=a,b&subject=…` (port 25 by default).
//!
//! Options (shoutrrr's names and aliases): `fromaddress`/`from`, `fromname`,
//! `toaddresses`/`to` (comma separated; one mail per recipient), `subject`/`title`
//! (default "Shoutrrr Notification"), `auth` (None, Plain, Login, OAuth2; by default Plain
//! when a user is given), `encryption` (None, ExplicitTLS, ImplicitTLS, Auto — Auto means
//! implicit TLS on port 465; `explicit`/`implicit` are accepted too), `usestarttls`/
//! `starttls` (default yes: upgrade when the server offers STARTTLS), `requirestarttls`,
//! `skiptlsverify`, `usehtml`, `clienthost` (EHLO name, default `localhost`, `auto` = this
//! machine's name) and `timeout` (per step, Go duration, default 10s).
//!
//! Like shoutrrr (Go's net/smtp), credentials are only sent over TLS or to localhost.
//! `encryption=ExplicitTLS` makes STARTTLS mandatory.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;

use super::ServiceUrl;
use crate::hooks::actions::{ActionEnv, ActionError};

const SERVICE: &str = "shoutrrr: smtp";
const IMPLICIT_TLS_PORT: u16 = 465;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Plain,
    Login,
    OAuth2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    None,
    Explicit,
    Implicit,
    Auto,
}

struct Config {
    host: String,
    port: u16,
    username: String,
    password: String,
    from: String,
    from_name: String,
    to: Vec<String>,
    subject: String,
    auth: Auth,
    encryption: Encryption,
    use_starttls: bool,
    require_starttls: bool,
    skip_tls_verify: bool,
    use_html: bool,
    client_host: String,
    timeout: Duration,
}

impl Config {
    fn implicit_tls(&self) -> bool {
        match self.encryption {
            Encryption::Implicit => true,
            Encryption::Auto => self.port == IMPLICIT_TLS_PORT,
            Encryption::None | Encryption::Explicit => false,
        }
    }
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    env: &ActionEnv<'_>,
) -> Result<(), ActionError> {
    let config = parse_config(url)?;
    let secrets: Vec<String> = url.secrets();
    let mask = |text: String| {
        let mut text = text;
        for secret in &secrets {
            text = text.replace(secret.as_str(), "***");
        }
        ActionError::new(text)
    };
    deliver(&config, message, env.log)
        .await
        .map_err(|e| mask(format!("{SERVICE}: {e}")))
}

fn parse_config(url: &ServiceUrl) -> Result<Config, ActionError> {
    let mut params = url.params(SERVICE);
    let from = params.take(&["fromaddress", "from"]).unwrap_or_default();
    let from_name = params.take(&["fromname"]).unwrap_or_default();
    let to: Vec<String> = params
        .take(&["toaddresses", "to"])
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        // A '+' in an address arrives as a space after query decoding; shoutrrr restores it.
        .map(|a| a.replace(' ', "+"))
        .collect();
    let subject = params
        .take(&["subject", "title"])
        .unwrap_or_else(|| "Shoutrrr Notification".to_string());
    let username = url.user();
    let auth = match params.take(&["auth"]) {
        None => None,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "none" => Some(Auth::None),
            "plain" => Some(Auth::Plain),
            "login" => Some(Auth::Login),
            "oauth2" => Some(Auth::OAuth2),
            "unknown" => None,
            "crammd5" => {
                return Err(ActionError::new(format!(
                    "{SERVICE}: auth=CRAMMD5 is not supported by backrest-rs (use Plain or Login over TLS)"
                )));
            }
            _ => return Err(params.invalid("auth", &value, "use None, Plain, Login or OAuth2")),
        },
    }
    .unwrap_or(if username.is_empty() { Auth::None } else { Auth::Plain });
    let encryption = match params.take(&["encryption"]) {
        None => Encryption::Auto,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "none" => Encryption::None,
            "explicittls" | "explicit" | "starttls" => Encryption::Explicit,
            "implicittls" | "implicit" | "tls" => Encryption::Implicit,
            "auto" => Encryption::Auto,
            _ => {
                return Err(params.invalid(
                    "encryption",
                    &value,
                    "use None, ExplicitTLS, ImplicitTLS or Auto",
                ));
            }
        },
    };
    let use_starttls = params.take_bool(&["usestarttls", "starttls"], true)?;
    let require_starttls = params.take_bool(&["requirestarttls"], false)?;
    let skip_tls_verify = params.take_bool(&["skiptlsverify"], false)?;
    let use_html = params.take_bool(&["usehtml"], false)?;
    let client_host = match params
        .take(&["clienthost"])
        .unwrap_or_else(|| "localhost".to_string())
    {
        auto if auto == "auto" => local_hostname(),
        name => name,
    };
    let timeout = match params.take(&["timeout"]) {
        None => Duration::from_secs(10),
        Some(value) => parse_go_duration(&value)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| params.invalid("timeout", &value, "a duration such as 10s or 1m30s"))?,
    };
    params.finish()?;

    let host = url.host();
    if host.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no server (smtp://host:port/?…)"
        )));
    }
    if from.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no sender (?from=…)"
        )));
    }
    if to.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no recipients (?to=a@example.com,b@example.com)"
        )));
    }
    Ok(Config {
        port: url.url.port().unwrap_or(25),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        username,
        password: url.password().unwrap_or_default(),
        from: from.replace(' ', "+"),
        from_name,
        to,
        subject,
        auth,
        encryption,
        use_starttls: use_starttls || encryption == Encryption::Explicit,
        require_starttls: require_starttls || encryption == Encryption::Explicit,
        skip_tls_verify,
        use_html,
        client_host,
        timeout,
    })
}

async fn deliver(
    config: &Config,
    message: &str,
    log: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), String> {
    let address = (config.host.as_str(), config.port);
    let tcp = tokio::time::timeout(config.timeout, TcpStream::connect(address))
        .await
        .map_err(|_| format!("connecting to {}:{} timed out", config.host, config.port))?
        .map_err(|e| format!("connecting to {}:{}: {e}", config.host, config.port))?;
    let stream = if config.implicit_tls() {
        Stream::Tls(Box::new(start_tls(tcp, config).await?))
    } else {
        Stream::Plain(tcp)
    };
    let mut session = Session {
        io: BufReader::new(stream),
        timeout: config.timeout,
    };

    session.expect_reply("greeting", &[220]).await?;
    let mut extensions = session.hello(&config.client_host).await?;

    if config.use_starttls && !session.is_tls() {
        if extensions.iter().any(|e| e == "STARTTLS") {
            session.command("STARTTLS", "STARTTLS", &[220]).await?;
            let Stream::Plain(tcp) = session.io.into_inner() else {
                unreachable!("checked: not TLS yet")
            };
            session = Session {
                io: BufReader::new(Stream::Tls(Box::new(start_tls(tcp, config).await?))),
                timeout: config.timeout,
            };
            extensions = session.hello(&config.client_host).await?;
        } else if config.require_starttls {
            return Err("the server does not support STARTTLS".to_string());
        } else {
            log("Warning: the SMTP server does not offer STARTTLS; the connection is unencrypted");
        }
    }

    if config.auth != Auth::None {
        let local = matches!(config.host.as_str(), "localhost" | "127.0.0.1" | "::1");
        if !session.is_tls() && !local {
            return Err("refusing to send credentials over an unencrypted connection (the server offers no TLS)".to_string());
        }
        authenticate(&mut session, config).await?;
    }
    let _ = extensions;

    let mut failures = Vec::new();
    for recipient in &config.to {
        if let Err(e) = send_one(&mut session, config, recipient, message).await {
            failures.push(format!("{recipient}: {e}"));
            // Leave the failed transaction so the next recipient starts clean.
            if session.command("RSET", "RSET", &[250]).await.is_err() {
                break;
            }
        }
    }
    // The mail is delivered once DATA is accepted; a failing QUIT changes nothing.
    let _ = session.command("QUIT", "QUIT", &[221]).await;

    if failures.is_empty() {
        log(&format!("Mail sent to {}", config.to.join(", ")));
        Ok(())
    } else {
        Err(format!("failed to send to {}", failures.join("; ")))
    }
}

async fn authenticate(session: &mut Session, config: &Config) -> Result<(), String> {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    match config.auth {
        Auth::None => Ok(()),
        Auth::Plain => {
            let credentials = b64(&format!("\0{}\0{}", config.username, config.password));
            session
                .command(
                    &format!("AUTH PLAIN {credentials}"),
                    "authentication (PLAIN)",
                    &[235],
                )
                .await
                .map(drop)
        }
        Auth::Login => {
            session
                .command("AUTH LOGIN", "authentication (LOGIN)", &[334])
                .await?;
            session
                .command(
                    &b64(&config.username),
                    "authentication (LOGIN user)",
                    &[334],
                )
                .await?;
            session
                .command(
                    &b64(&config.password),
                    "authentication (LOGIN password)",
                    &[235],
                )
                .await
                .map(drop)
        }
        Auth::OAuth2 => {
            let token = b64(&format!(
                "user={}\x01auth=Bearer {}\x01\x01",
                config.username, config.password
            ));
            session
                .command(
                    &format!("AUTH XOAUTH2 {token}"),
                    "authentication (XOAUTH2)",
                    &[235],
                )
                .await
                .map(drop)
        }
    }
}

async fn send_one(
    session: &mut Session,
    config: &Config,
    recipient: &str,
    message: &str,
) -> Result<(), String> {
    session
        .command(&format!("MAIL FROM:<{}>", config.from), "MAIL FROM", &[250])
        .await?;
    session
        .command(&format!("RCPT TO:<{recipient}>"), "RCPT TO", &[250, 251])
        .await?;
    session.command("DATA", "DATA", &[354]).await?;
    let mail = compose(config, recipient, message);
    session.write(&dot_stuff(&mail)).await?;
    session.write(b".\r\n").await?;
    session.expect_reply("end of DATA", &[250]).await.map(drop)
}

/// The mail's headers and body, with CRLF line ends.
fn compose(config: &Config, recipient: &str, message: &str) -> String {
    let one_line = |text: &str| text.replace(['\r', '\n'], " ");
    let from = if config.from_name.is_empty() {
        format!("<{}>", one_line(&config.from))
    } else {
        format!(
            "{} <{}>",
            encode_header(&one_line(&config.from_name)),
            one_line(&config.from)
        )
    };
    let date = chrono::Local::now().format("%a, %d %b %Y %H:%M:%S %z");
    let mut mail = format!(
        "Subject: {}\r\nDate: {date}\r\nTo: {}\r\nFrom: {from}\r\nMIME-Version: 1.0\r\n",
        encode_header(&one_line(&config.subject)),
        one_line(recipient),
    );
    let text = message.replace("\r\n", "\n");
    let eight_bit = !text.is_ascii();
    if config.use_html {
        let mut boundary_bytes = [0u8; 8];
        let _ = getrandom::fill(&mut boundary_bytes);
        let boundary = hex::encode(boundary_bytes);
        mail.push_str(&format!(
            "Content-Type: multipart/alternative; boundary={boundary}\r\n"
        ));
        if eight_bit {
            mail.push_str("Content-Transfer-Encoding: 8bit\r\n");
        }
        mail.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: text/plain; charset=\"UTF-8\"\r\n\r\n{text}\r\n\
             --{boundary}\r\nContent-Type: text/html; charset=\"UTF-8\"\r\n\r\n<pre>{}</pre>\r\n--{boundary}--\r\n",
            html_escape(&text)
        ));
    } else {
        mail.push_str("Content-Type: text/plain; charset=\"UTF-8\"\r\n");
        if eight_bit {
            mail.push_str("Content-Transfer-Encoding: 8bit\r\n");
        }
        mail.push_str("\r\n");
        mail.push_str(&text);
        if !text.ends_with('\n') {
            mail.push('\n');
        }
    }
    mail.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Lines starting with '.' get another '.' (RFC 5321 §4.5.2).
fn dot_stuff(mail: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(mail.len() + 16);
    for line in mail.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// RFC 2047 encoding for a header value that is not plain ASCII.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        text.to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Go's `time.ParseDuration` for the usual forms: `10s`, `1m30s`, `1.5h`, `500ms`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    Some(Duration::from_secs_f64(total))
}

async fn start_tls(
    tcp: TcpStream,
    config: &Config,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tls = crate::hooks::actions::tls::client_config(!config.skip_tls_verify)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let name = rustls::pki_types::ServerName::try_from(config.host.clone())
        .map_err(|e| format!("TLS: invalid server name {:?}: {e}", config.host))?;
    tokio::time::timeout(config.timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// A server reply: its code and its lines' texts.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join(" ")
    }
}

struct Session {
    io: BufReader<Stream>,
    timeout: Duration,
}

impl Session {
    fn is_tls(&self) -> bool {
        matches!(self.io.get_ref(), Stream::Tls(_))
    }

    /// EHLO, falling back to HELO; returns the extension keywords (upper case).
    async fn hello(&mut self, client_host: &str) -> Result<Vec<String>, String> {
        self.write(format!("EHLO {client_host}\r\n").as_bytes())
            .await?;
        let reply = self.read_reply().await?;
        if reply.code == 250 {
            return Ok(reply
                .lines
                .iter()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .map(|k| k.to_ascii_uppercase())
                .collect());
        }
        self.command(&format!("HELO {client_host}"), "HELO", &[250])
            .await?;
        Ok(Vec::new())
    }

    /// Sends one command line and checks the reply's code. `what` names the step in
    /// errors (the line itself may hold credentials).
    async fn command(&mut self, line: &str, what: &str, expected: &[u16]) -> Result<Reply, String> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.expect_reply(what, expected).await
    }

    async fn expect_reply(&mut self, what: &str, expected: &[u16]) -> Result<Reply, String> {
        let reply = self.read_reply().await?;
        if !expected.contains(&reply.code) {
            return Err(format!(
                "{what} failed: the server answered {} {}",
                reply.code,
                reply.text()
            ));
        }
        Ok(reply)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        let io = self.io.get_mut();
        tokio::time::timeout(self.timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| "the server stopped reading (timed out)".to_string())?
        .map_err(|e| format!("writing to the server: {e}"))
    }

    async fn read_reply(&mut self) -> Result<Reply, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(self.timeout, self.io.read_line(&mut line))
                .await
                .map_err(|_| "no answer from the server (timed out)".to_string())?
                .map_err(|e| format!("reading from the server: {e}"))?;
            if read == 0 {
                return Err("the server closed the connection".to_string());
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(format!("malformed reply from the server: {line:?}"));
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
        }
    }
}

/// The connection, before or after STARTTLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
