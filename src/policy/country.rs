//! Which countries are in the EU and the EEA.

use crate::crd::Jurisdiction;

/// The 27 EU member states (ISO 3166-1 alpha-2; Greece is `GR`, not `EL`).
pub const EU_COUNTRIES: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// EEA members outside the EU.
pub const EEA_COUNTRIES: [&str; 3] = ["IS", "LI", "NO"];

/// Jurisdiction of a country code. Anything unknown or malformed is a third country: an
/// unrecognised code must never be treated as EU.
pub fn jurisdiction_of(country: &str) -> Jurisdiction {
    if EU_COUNTRIES.contains(&country) {
        Jurisdiction::Eu
    } else if EEA_COUNTRIES.contains(&country) {
        Jurisdiction::Eea
    } else {
        Jurisdiction::ThirdCountry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_states_are_eu_and_efta_members_are_eea() {
        assert_eq!(jurisdiction_of("NL"), Jurisdiction::Eu);
        assert_eq!(jurisdiction_of("GR"), Jurisdiction::Eu);
        assert_eq!(jurisdiction_of("NO"), Jurisdiction::Eea);
    }

    #[test]
    fn unknown_lower_case_or_former_members_are_third_countries() {
        for code in ["US", "GB", "CH", "nl", "EL", "", "NLD", "EU"] {
            assert_eq!(jurisdiction_of(code), Jurisdiction::ThirdCountry, "{code}");
        }
    }
}
