//! One delivery attempt to one channel: a webhook POST, a command with the payload on stdin,
//! or a mail. Each is bounded by the channel's `timeout`; blocking clients run on tokio's blocking
//! threads, so nothing here holds up the runtime the scheduler shares.

use std::process::Stdio;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::payload::Payload;
use crate::config::{NotifyTarget, Secret, Smtp};

/// Delivers `payload` to `target` once; the error says what went wrong, never a secret.
pub async fn send(
    target: &NotifyTarget,
    payload: &Payload,
    smtp: Option<&Smtp>,
    timeout: Duration,
) -> Result<(), String> {
    let body = serde_json::to_vec(payload).map_err(|e| format!("cannot encode: {e}"))?;
    match target {
        NotifyTarget::Webhook { url, headers } => {
            let url = url.clone();
            let headers = headers.clone();
            blocking(move || webhook(&url, &headers, &body, timeout)).await
        }
        NotifyTarget::Command { argv } => {
            match tokio::time::timeout(timeout, command(argv, &body, payload)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "timed out after {} s; the command was killed",
                    timeout.as_secs()
                )),
            }
        }
        NotifyTarget::Email { to, from } => {
            let Some(smtp) = smtp.cloned() else {
                return Err("no service.smtp to send mail through".into());
            };
            let message = mail(from, to, payload)?;
            blocking(move || send_mail(&smtp, &message, timeout)).await
        }
    }
}

async fn blocking(f: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<(), String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("the delivery thread failed: {e}")))
}

fn webhook(
    url: &Secret,
    headers: &[(String, Secret)],
    body: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("jobtop/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent
        .post(url.expose())
        .header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.expose());
    }
    match request.send(body) {
        Ok(response) if response.status().is_success() => Ok(()),
        Ok(response) => Err(format!(
            "the receiver answered HTTP {}",
            response.status().as_u16()
        )),
        // ureq's message may quote the URL, which may carry a token: say only the kind.
        Err(ureq::Error::Timeout(_)) => Err(format!("timed out after {} s", timeout.as_secs())),
        Err(ureq::Error::Io(e)) => Err(format!("cannot reach the receiver: {}", e.kind())),
        Err(ureq::Error::ConnectionFailed) => Err("cannot connect to the receiver".into()),
        Err(ureq::Error::HostNotFound) => Err("the receiver's host is not found".into()),
        Err(e) => Err(format!(
            "the request failed: {}",
            redact(&e.to_string(), url)
        )),
    }
}

/// `message` without `secret` in it.
fn redact(message: &str, secret: &Secret) -> String {
    if secret.expose().is_empty() {
        message.to_string()
    } else {
        message.replace(secret.expose(), "<webhook URL>")
    }
}

async fn command(argv: &[Secret], body: &[u8], payload: &Payload) -> Result<(), String> {
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| "the command is empty".to_string())?;
    let mut child = tokio::process::Command::new(program.expose())
        .args(rest.iter().map(Secret::expose))
        .env("JOBTOP_EVENT", payload.event.as_str())
        .env("JOBTOP_JOB", &payload.job)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // The timeout drops this future: the command is killed then, not left running.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the command: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read its stdin is its own business: only its exit counts.
        let _ = stdin.write_all(body).await;
        let _ = stdin.shutdown().await;
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot wait for the command: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        let said = stderr.lines().next().unwrap_or_default().trim();
        Err(if said.is_empty() {
            format!("the command ended with {status}")
        } else {
            format!("the command ended with {status}: {said}")
        })
    }
}

fn mail(from: &str, to: &[String], payload: &Payload) -> Result<Message, String> {
    let parse = |a: &str| {
        a.parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("invalid mail address {a:?}: {e}"))
    };
    let mut builder = Message::builder()
        .from(parse(from)?)
        .subject(payload.subject())
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        builder = builder.to(parse(address)?);
    }
    builder
        .body(payload.body())
        .map_err(|e| format!("cannot build the mail: {e}"))
}

fn send_mail(smtp: &Smtp, message: &Message, timeout: Duration) -> Result<(), String> {
    let url = url::Url::parse(&smtp.url).map_err(|e| format!("invalid SMTP URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let builder = match url.scheme() {
        "smtps" => SmtpTransport::relay(host).map(|b| b.port(url.port().unwrap_or(465))),
        "smtp+starttls" => {
            SmtpTransport::starttls_relay(host).map(|b| b.port(url.port().unwrap_or(587)))
        }
        _ => Ok(SmtpTransport::builder_dangerous(host).port(url.port().unwrap_or(25))),
    }
    .map_err(|e| format!("cannot set up TLS to {host}: {e}"))?;
    let mut builder = builder.timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.expose().to_string(),
            password.expose().to_string(),
        ));
    }
    builder
        .build()
        .send(message)
        .map(|_| ())
        .map_err(|e| format!("the mail server at {host} refused or failed: {e}"))
}
