//! HTTP/1.1 keep-alive connections to the submit socket, one request in flight each.
//!
//! Each load connection is a hyper `http1` connection of its own (over TCP or a Unix
//! socket), not a pooled client: a worker owns its connection, so no pool lock is taken per
//! request, and a broken connection is replaced by the worker that saw it break.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::LoadError;
use super::options::Target;

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The connection could not be opened (the engine is not listening, or refused it).
    #[error("connecting: {0}")]
    Connect(#[source] std::io::Error),
    /// The HTTP exchange failed: the connection closed or the answer was not HTTP.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// No complete answer within the request timeout.
    #[error("no answer within the timeout")]
    Timeout,
    /// The request path is not a valid URI path (an id from the answers with odd characters).
    #[error("not a request path: {0:?}")]
    Path(String),
}

impl RequestError {
    /// A short name for counting: `connect`, `http`, `timeout` or `path`.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::Connect(_) => "connect",
            RequestError::Http(_) => "http",
            RequestError::Timeout => "timeout",
            RequestError::Path(_) => "path",
        }
    }
}

/// The target and the headers every request carries.
#[derive(Clone, Debug)]
pub struct Endpoint {
    target: Target,
    host: HeaderValue,
    authorization: HeaderValue,
    json: HeaderValue,
    timeout: Duration,
}

/// One open connection.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Endpoint {
    /// Checks that the key can be a header value.
    pub fn new(target: Target, key: &str, timeout: Duration) -> Result<Endpoint, LoadError> {
        let authorization = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            LoadError::Option("the API key has characters a header cannot hold".into())
        })?;
        let host = HeaderValue::from_str(&target.authority())
            .map_err(|_| LoadError::Option("the target cannot be a Host header".into()))?;
        Ok(Endpoint {
            target,
            host,
            authorization,
            json: HeaderValue::from_static("application/json"),
            timeout,
        })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens a connection (within the request timeout).
    pub async fn connect(&self) -> Result<Connection, RequestError> {
        let opening = async {
            match &self.target {
                Target::Tcp(addr) => {
                    let stream = tokio::net::TcpStream::connect(addr)
                        .await
                        .map_err(RequestError::Connect)?;
                    // Requests are small and answered one at a time: do not wait to coalesce.
                    stream.set_nodelay(true).map_err(RequestError::Connect)?;
                    handshake(stream).await
                }
                Target::Unix(path) => {
                    let stream = tokio::net::UnixStream::connect(path)
                        .await
                        .map_err(RequestError::Connect)?;
                    handshake(stream).await
                }
            }
        };
        tokio::time::timeout(self.timeout, opening)
            .await
            .map_err(|_| RequestError::Timeout)?
    }

    /// Sends one request and reads the whole answer, within the request timeout. After an
    /// error the connection should be dropped.
    pub async fn send(
        &self,
        connection: &mut Connection,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), RequestError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        // An origin-form URI: the Host header names the target.
        *request.uri_mut() = path
            .parse()
            .map_err(|_| RequestError::Path(path.to_owned()))?;
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert(AUTHORIZATION, self.authorization.clone());
        headers.insert(CONTENT_TYPE, self.json.clone());
        let exchange = async {
            connection.sender.ready().await?;
            let response = connection.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| RequestError::Timeout)?
    }
}

async fn handshake<S>(stream: S) -> Result<Connection, RequestError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends when the sender is dropped or the peer closes.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Connection { sender })
}
