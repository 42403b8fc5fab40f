//! The string `format`s CRD schemas validate (upstream's `supportedVersionedFormats`,
//! checked the way kube-openapi's `strfmt` registry does). Formats upstream supports but
//! nobody uses in practice (ISBN, credit card, SSN, colours, BSON ids, e-mail, URI) are
//! accepted unchecked.

use std::sync::LazyLock;

use regex::Regex;

fn re(pattern: &str) -> Option<Regex> {
    Regex::new(pattern).ok()
}

static TIME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60)(?:\.\d+)?(?:[zZ]|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?$",
    )
});
static UUID: LazyLock<Option<Regex>> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static HOSTNAME: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static MAC: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(
        r"^(?:[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}|[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){7}|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2})$",
    )
});
static DURATION: LazyLock<Option<Regex>> = LazyLock::new(|| {
    // Go's time.ParseDuration, or kube-openapi's "3 days"-style durations.
    re(
        r"^(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$|^0$|^[-+]?\d+\s*(?:ns|us|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?|minutes?|hours?|days?|weeks?)$",
    )
});
static QUANTITY: LazyLock<Option<Regex>> = LazyLock::new(|| {
    re(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
});

fn matches(re: &LazyLock<Option<Regex>>, text: &str) -> bool {
    re.as_ref().is_some_and(|re| re.is_match(text))
}

/// `YYYY-MM-DD` with a day that exists.
pub fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// strfmt's `IsDateTime`: a date, `T`, a time with an optional offset.
pub fn is_date_time(text: &str) -> bool {
    let lower = text.to_lowercase();
    let Some((date, time)) = lower.split_once('t') else {
        return false;
    };
    is_date(date) && matches(&TIME, time)
}

/// Standard base64, padded (`encoding/base64.StdEncoding`).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let mut acc: u32 = 0;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' {
                if i < 2 {
                    return None;
                }
                pad += 1;
                0
            } else if pad > 0 {
                return None;
            } else {
                ALPHABET.iter().position(|&a| a == c)? as u32
            };
            acc = (acc << 6) | v;
        }
        let [_, a, b, c] = acc.to_be_bytes();
        out.push(a);
        if pad < 2 {
            out.push(b);
        }
        if pad < 1 {
            out.push(c);
        }
    }
    Some(out)
}

fn is_ipv4(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}

fn is_ipv6(text: &str) -> bool {
    text.contains(':') && text.parse::<std::net::IpAddr>().is_ok()
}

fn is_cidr(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// Whether `text` is a valid value of the string `format` (unknown formats always are).
pub fn valid(format: &str, text: &str) -> bool {
    match format.replace('-', "").as_str() {
        "datetime" => is_date_time(text),
        "date" => is_date(text),
        "byte" => decode_base64(text).is_some(),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => matches(&UUID, text),
        "ipv4" => is_ipv4(text),
        "ipv6" => is_ipv6(text),
        "cidr" => is_cidr(text),
        "mac" => matches(&MAC, text),
        "hostname" => matches(&HOSTNAME, text),
        "duration" => matches(&DURATION, text),
        "quantity" => matches(&QUANTITY, text),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_checked_like_strfmt() {
        assert!(valid("date-time", "2024-02-29T10:00:00Z"));
        assert!(valid("date-time", "2024-02-29T10:00:00.123+01:00"));
        assert!(!valid("date-time", "2023-02-29T10:00:00Z"));
        assert!(!valid("date-time", "yesterday"));
        assert!(valid("byte", "aGk="));
        assert!(!valid("byte", "a"));
        assert_eq!(decode_base64("aGk=").unwrap_or_default(), b"hi");
        assert!(valid("cidr", "10.0.0.0/8"));
        assert!(!valid("ipv4", "10.0.0"));
        assert!(valid("something-else", "anything"));
    }
}
