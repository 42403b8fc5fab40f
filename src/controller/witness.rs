//! POSTing checkpoints to a witness, a timestamping relay or any HTTP(S) endpoint that keeps
//! them out of the operator's reach. Each POST is bounded; a failure is logged and counted,
//! never retried in a loop and never in the way of a reconcile (the publisher runs apart).

use crate::audit::SignedCheckpoint;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// Longest response body read (and then dropped): a cosignature or an error message.
const MAX_RESPONSE: usize = 64 * 1024;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client for one witness URL.
pub(super) struct Witness {
    url: http::Uri,
    timeout: Duration,
    client: Result<HttpsClient, String>,
}

impl Witness {
    /// `url`: `https://` (CA roots of the system) or `http://`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let url: http::Uri = url
            .parse()
            .map_err(|e| format!("witness URL {url:?}: {e}"))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(format!("witness URL {url} must be http:// or https://"));
        }
        let client = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map(|builder| {
                let connector = builder.https_or_http().enable_http1().build();
                Client::builder(TokioExecutor::new()).build(connector)
            })
            .map_err(|e| format!("no TLS trust roots for the witness: {e}"));
        Ok(Self {
            url,
            timeout,
            client,
        })
    }

    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// POSTs the signed note as `text/plain`; Ok on a 2xx answer within the timeout.
    pub async fn post(&self, checkpoint: &SignedCheckpoint) -> Result<(), String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let request = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header(http::header::USER_AGENT, "sovra")
            .body(Full::new(Bytes::from(checkpoint.to_string())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if status.is_success() {
                Ok(())
            } else {
                let text = String::from_utf8_lossy(&body);
                Err(format!("answered {status}: {}", text.trim()))
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_with_a_host_are_witnesses() {
        assert!(Witness::new("https://witness.example/add", Duration::from_secs(1)).is_ok());
        assert!(Witness::new("http://127.0.0.1:9/x", Duration::from_secs(1)).is_ok());
        assert!(Witness::new("ftp://witness.example/", Duration::from_secs(1)).is_err());
        assert!(Witness::new("/relative", Duration::from_secs(1)).is_err());
    }
}
