//! Member kubeconfigs: what Sovra accepts before it builds a client from one. The check is pure
//! ([`check_kubeconfig`]: parse and every safety rule, no IO); [`client_from_kubeconfig`] runs it
//! and then builds the client.

use super::fleet::ConnectionFault;
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
        let server = cluster.server.as_deref().unwrap_or_default();
        if let Some(rest) = server.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or_default();
            let loopback = matches!(host, "127.0.0.1" | "localhost") || rest.starts_with("[::1]");
            if !loopback {
                return Err(format!(
                    "cluster {:?} uses plain http to {host}: only https is accepted (http only to a loopback address)",
                    named.name
                ));
            }
        }
    }
    Ok(())
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
}
