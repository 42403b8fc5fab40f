//! A member's kubeconfig as the operator checks it before building a client from it. Any text
//! must be accepted or refused, never a panic; what is accepted runs no command, reads no
//! local file and verifies TLS.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(kubeconfig) = sovra::controller::check_kubeconfig(text) {
        for user in kubeconfig
            .auth_infos
            .iter()
            .filter_map(|u| u.auth_info.as_ref())
        {
            assert!(user.exec.is_none() && user.auth_provider.is_none());
            assert!(user.token_file.is_none());
            assert!(user.client_certificate.is_none() && user.client_key.is_none());
        }
        for cluster in kubeconfig
            .clusters
            .iter()
            .filter_map(|c| c.cluster.as_ref())
        {
            assert!(cluster.insecure_skip_tls_verify != Some(true));
            assert!(cluster.certificate_authority.is_none());
            // The authority (between `://` and the path) holds no user name or password.
            let server = cluster.server.as_deref().unwrap_or_default();
            let after_scheme = server.split_once("://").map_or(server, |(_, rest)| rest);
            let authority = after_scheme
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default();
            assert!(!authority.contains('@'), "userinfo accepted in {server:?}");
        }
    }
});
