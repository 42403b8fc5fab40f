//! Member kubeconfigs: what Sovra accepts before it builds a client from one. The check is pure
//! ([`check_kubeconfig`]: parse and every safety rule, no IO); [`client_from_kubeconfig`] runs it
//! and then builds the client.

use super::member_health::ConnectionFault;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;

/// Parses a member's kubeconfig and applies every safety rule. Only inline credentials are
/// accepted: `exec` and `auth-provider` would run commands inside the operator, and file paths
/// would read the operator's own files (its service account token, say) and send them to
/// whatever server the kubeconfig names. TLS must be verified; plain HTTP is only accepted to a
/// loopback address (development).
///
/// Errors never quote the kubeconfig's content: a SovereignCluster pointed at some other Secret
/// must not leak it into status or Events.
pub fn check_kubeconfig(yaml: &str) -> Result<Kubeconfig, (ConnectionFault, String)> {
    let invalid = |message: String| (ConnectionFault::KubeconfigInvalid, message);
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|_| {
        invalid("not a kubeconfig (a YAML document with clusters, users and contexts)".to_owned())
    })?;
    refuse_unsafe(&kubeconfig).map_err(invalid)?;
    Ok(kubeconfig)
}

/// A client for a member, from a kubeconfig that passed [`check_kubeconfig`].
pub async fn client_from_kubeconfig(
    yaml: &str,
    timeout: Duration,
) -> Result<Client, (ConnectionFault, String)> {
    let invalid = |message: String| (ConnectionFault::KubeconfigInvalid, message);
    let kubeconfig = check_kubeconfig(yaml)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|_| {
            invalid("the kubeconfig has no usable current context, cluster or user".to_owned())
        })?;
    config.connect_timeout = Some(timeout);
    Client::try_from(config).map_err(|e| invalid(format!("cannot build a client: {e}")))
}

fn refuse_unsafe(kubeconfig: &Kubeconfig) -> Result<(), String> {
    for named in &kubeconfig.auth_infos {
        let Some(user) = &named.auth_info else {
            continue;
        };
        let local = [
            ("exec", user.exec.is_some()),
            ("auth-provider", user.auth_provider.is_some()),
            ("tokenFile", user.token_file.is_some()),
            ("client-certificate", user.client_certificate.is_some()),
            ("client-key", user.client_key.is_some()),
        ];
        if let Some((field, _)) = local.iter().find(|(_, set)| *set) {
            return Err(format!(
                "user {:?} uses {field}; only inline credentials (token, client-certificate-data, client-key-data) are accepted",
                named.name
            ));
        }
    }
    for named in &kubeconfig.clusters {
        let Some(cluster) = &named.cluster else {
            continue;
        };
        if cluster.certificate_authority.is_some() {
            return Err(format!(
                "cluster {:?} uses certificate-authority (a file); use certificate-authority-data",
                named.name
            ));
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(format!(
                "cluster {:?} sets insecure-skip-tls-verify: the member's identity must be verified",
                named.name
            ));
        }
        if cluster.proxy_url.is_some() {
            return Err(format!(
                "cluster {:?} sets proxy-url: Sovra connects to members directly",
                named.name
            ));
        }
        check_server(cluster.server.as_deref())
            .map_err(|why| format!("cluster {:?}: {why}", named.name))?;
    }
    Ok(())
}

/// The server URL must be `https://host[:port][/path]`, or `http://` to a loopback host. It is
/// parsed as kube parses it (`http::Uri`), so the host checked here is the host connected to.
/// Scheme and host compare case-insensitively. No user name or password may be in the URL (it
/// would be sent in the clear to whoever reads it, and it hides the real host from a reader:
/// `http://127.0.0.1:1@remote.example/` goes to `remote.example`). The messages quote neither
/// the URL nor anything but a host that passed these checks.
fn check_server(server: Option<&str>) -> Result<(), String> {
    let Some(server) = server else {
        return Err("has no server URL".to_owned());
    };
    let unparsable = || "the server URL cannot be parsed (expected https://host[:port])".to_owned();
    let uri: http::Uri = server.parse().map_err(|_| unparsable())?;
    let Some(scheme) = uri.scheme_str() else {
        return Err("the server URL has no scheme: use https://host[:port]".to_owned());
    };
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err("the server URL must use https".to_owned());
    }
    let Some(authority) = uri.authority() else {
        return Err(unparsable());
    };
    if authority.as_str().contains('@') {
        return Err(
            "the server URL contains a user name or password: credentials belong in the user entry"
                .to_owned(),
        );
    }
    let host = authority.host();
    let port = authority.as_str().strip_prefix(host).unwrap_or_default();
    let port_valid = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok());
    if host.is_empty() || !port_valid {
        return Err(unparsable());
    }
    if !https && !is_loopback(host) {
        return Err(format!(
            "plain http to {host}: only https is accepted (http only to a loopback address)"
        ));
    }
    Ok(())
}

/// `localhost` (exactly, any case), an address in 127.0.0.0/8, or `[::1]`. Only the standard
/// spellings of an address count: `2130706433` or `127.1` may reach loopback through some
/// resolvers and not others, so they are not loopback here.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str, cluster: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://member.example:6443\n{cluster}users:\n- name: u\n  user:\n{user}contexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n"
        )
    }

    #[tokio::test]
    async fn an_inline_token_kubeconfig_gives_a_client() {
        let yaml = kubeconfig("    token: abc\n", "");
        assert!(
            client_from_kubeconfig(&yaml, Duration::from_secs(1))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn credentials_that_run_commands_or_read_local_files_are_refused() {
        for user in [
            "    exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh}\n",
            "    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            "    client-certificate: /etc/cert.pem\n    client-key: /etc/key.pem\n",
        ] {
            let error = client_from_kubeconfig(&kubeconfig(user, ""), Duration::from_secs(1))
                .await
                .err();
            let Some((why, message)) = error else {
                unreachable!("accepted {user}");
            };
            assert_eq!(why, ConnectionFault::KubeconfigInvalid);
            assert!(message.contains("only inline credentials"), "{message}");
        }
        let file_ca = kubeconfig("    token: abc\n", "    certificate-authority: /etc/ca\n");
        let refused = client_from_kubeconfig(&file_ca, Duration::from_secs(1)).await;
        assert!(matches!(
            refused,
            Err((ConnectionFault::KubeconfigInvalid, _))
        ));
    }

    #[tokio::test]
    async fn unverified_tls_and_plain_http_to_another_host_are_refused() {
        let insecure = kubeconfig("    token: abc\n", "    insecure-skip-tls-verify: true\n");
        let refused = client_from_kubeconfig(&insecure, Duration::from_secs(1)).await;
        assert!(
            matches!(refused, Err((ConnectionFault::KubeconfigInvalid, m)) if m.contains("insecure"))
        );
        let plain = kubeconfig("    token: abc\n", "")
            .replace("https://member.example:6443", "http://member.example:6443");
        let refused = client_from_kubeconfig(&plain, Duration::from_secs(1)).await;
        assert!(
            matches!(refused, Err((ConnectionFault::KubeconfigInvalid, m)) if m.contains("only https"))
        );
        let local = kubeconfig("    token: abc\n", "")
            .replace("https://member.example:6443", "http://127.0.0.1:6443");
        assert!(
            client_from_kubeconfig(&local, Duration::from_secs(1))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn text_that_is_not_a_kubeconfig_is_invalid_not_a_crash() {
        for text in ["", "{{{", "kind: Config\nclusters: 7\n", "\u{0}\u{1}"] {
            let result = client_from_kubeconfig(text, Duration::from_secs(1)).await;
            assert!(
                matches!(result, Err((ConnectionFault::KubeconfigInvalid, _))),
                "{text:?}"
            );
        }
    }

    /// The kubeconfig with `server` as its cluster's server URL, and a token that must never
    /// appear in an error.
    fn with_server(server: &str) -> String {
        kubeconfig("    token: t0ken-s3cret\n", "")
            .replace("https://member.example:6443", &format!("{server:?}"))
    }

    fn refusal(server: &str) -> Option<String> {
        check_kubeconfig(&with_server(server))
            .err()
            .map(|(why, message)| {
                assert_eq!(why, ConnectionFault::KubeconfigInvalid, "{server}");
                message
            })
    }

    #[test]
    fn an_upper_case_http_scheme_to_a_remote_host_is_refused() {
        let message = refusal("HTTP://remote.example");
        assert!(
            message.as_deref().is_some_and(|m| m.contains("only https")),
            "{message:?}"
        );
    }

    #[test]
    fn userinfo_that_looks_like_a_loopback_address_does_not_make_the_host_loopback() {
        assert!(refusal("http://127.0.0.1:1@remote.example/").is_some());
    }

    #[test]
    fn plain_http_to_the_ipv6_loopback_address_is_allowed() {
        assert_eq!(refusal("http://[::1]:6443"), None);
    }

    #[test]
    fn a_host_that_only_starts_with_localhost_is_not_loopback() {
        assert!(refusal("http://localhost.example").is_some());
        assert!(refusal("http://localhost.example:6443/").is_some());
    }

    #[test]
    fn userinfo_in_the_server_url_is_refused_for_https_too() {
        let message = refusal("https://user@host");
        assert!(
            message.as_deref().is_some_and(|m| m.contains("user name")),
            "{message:?}"
        );
        assert!(refusal("https://@host").is_some());
    }

    #[test]
    fn localhost_in_capitals_is_loopback() {
        assert_eq!(refusal("http://LOCALHOST:6443"), None);
    }

    #[test]
    fn every_address_in_127_0_0_0_slash_8_is_loopback() {
        assert_eq!(refusal("http://127.0.0.2"), None);
        assert_eq!(refusal("http://127.255.0.1:8080/"), None);
        assert!(refusal("http://128.0.0.1").is_some());
        // Spellings a resolver may read as 127.0.0.1 are not accepted as loopback.
        assert!(refusal("http://2130706433/").is_some());
        assert!(refusal("http://127.1/").is_some());
    }

    #[test]
    fn a_mixed_case_https_scheme_is_https() {
        assert_eq!(refusal("hTTps://member.example"), None);
    }

    #[test]
    fn a_server_without_a_scheme_or_that_cannot_be_parsed_is_refused() {
        for server in [
            "member.example:6443",
            "/api",
            "",
            "http://",
            "http://[::1",
            "http://host name",
            "ftp://member.example",
            "https://member.example:notaport",
            "http://[::1]x",
        ] {
            assert!(refusal(server).is_some(), "accepted {server:?}");
        }
        let no_server = kubeconfig("    token: abc\n", "").replace(
            "    server: https://member.example:6443\n",
            "    tls-server-name: m\n",
        );
        assert!(check_kubeconfig(&no_server).is_err());
    }

    #[test]
    fn error_texts_never_quote_the_kubeconfigs_secret_content() {
        for server in [
            "https://admin:pa55word@member.example",
            "http://pa55word@127.0.0.1",
            "pa55word",
            "ftp://member.example/pa55word",
            "http://remote.example/pa55word",
            "ht!tp://pa55word",
        ] {
            let message = refusal(server);
            assert!(
                message.as_deref().is_some_and(|m| !m.contains("pa55word")
                    && !m.contains("admin")
                    && !m.contains("t0ken-s3cret")),
                "{server}: {message:?}"
            );
        }
    }

    #[test]
    fn deeply_nested_or_self_referencing_text_is_refused_not_a_crash() {
        let laughs = (1..10).fold(
            "a: &a0 [x, x, x, x, x, x, x, x, x]\n".to_owned(),
            |text, i| {
                let refs = vec![format!("*a{}", i - 1); 9].join(", ");
                format!("{text}a{i}: &a{i} [{refs}]\n")
            },
        );
        for text in [
            "[".repeat(100_000),
            "{a: ".repeat(100_000),
            "- ".repeat(100_000),
            laughs,
        ] {
            assert!(check_kubeconfig(&text).is_err());
        }
    }
}
