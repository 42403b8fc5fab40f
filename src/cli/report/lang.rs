//! The HTML report's words in English and Dutch (`--lang en|nl`). The JSON form has no words:
//! its keys are the same in every language.

use crate::audit::AuditAction;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    En,
    Nl,
}

/// Every word the page shows that is not data.
#[derive(Debug)]
pub struct Words {
    /// `<html lang>`.
    pub code: &'static str,
    pub title: &'static str,
    pub subtitle: &'static str,
    pub trail: &'static str,
    pub period: &'static str,
    pub whole_trail: &'static str,
    pub first_last: &'static str,
    pub generated_by: &'static str,
    pub summary: &'static str,
    pub decisions_in_period: &'static str,
    pub chain: &'static str,
    pub chain_intact: &'static str,
    pub chain_broken: &'static str,
    pub verified_records: &'static str,
    pub head: &'static str,
    pub untrusted: &'static str,
    pub checkpoint: &'static str,
    pub no_checkpoint: &'static str,
    pub checkpoint_unverified_no_key: &'static str,
    pub checkpoint_unverified_unsupported: &'static str,
    pub checkpoint_valid: &'static str,
    pub checkpoint_invalid: &'static str,
    pub skipped_lines: &'static str,
    pub unknown_action: &'static str,
    pub unreadable: &'static str,
    pub placements: &'static str,
    pub placements_note: &'static str,
    pub workloads_placed: &'static str,
    pub placements_total: &'static str,
    pub by_class: &'static str,
    pub by_namespace: &'static str,
    pub by_cluster: &'static str,
    pub by_country: &'static str,
    pub by_provider: &'static str,
    pub unknown: &'static str,
    pub no_facts: &'static str,
    pub without_facts: &'static str,
    pub refusals: &'static str,
    pub refused_workloads: &'static str,
    pub reasons: &'static str,
    pub violations: &'static str,
    pub violations_over_time: &'static str,
    pub exit: &'static str,
    pub exit_needs_live: &'static str,
    pub live_workloads: &'static str,
    pub live_by_provider: &'static str,
    pub stranded: &'static str,
    pub exit_ready: &'static str,
    pub exit_unknown: &'static str,
    pub alternatives: &'static str,
    pub invalid_objects: &'static str,
    pub workloads: &'static str,
    pub runs_on: &'static str,
    pub runs_nowhere: &'static str,
    pub none: &'static str,
    pub time: &'static str,
    pub action: &'static str,
    pub object: &'static str,
    pub class: &'static str,
    pub clusters: &'static str,
    pub pools: &'static str,
    actions: [&'static str; 7],
}

impl Words {
    /// The action's name, in the order of [`AuditAction::ALL`].
    pub fn action_name(&self, action: AuditAction) -> &'static str {
        let index = AuditAction::ALL
            .iter()
            .position(|a| *a == action)
            .unwrap_or_default();
        self.actions.get(index).copied().unwrap_or_default()
    }
}

pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Nl => &NL,
    }
}

static EN: Words = Words {
    code: "en",
    title: "Sovra placement report",
    subtitle: "Where sensitive workloads were placed, refused and found in violation, from the hash-chained audit trail",
    trail: "Audit trail",
    period: "Period",
    whole_trail: "the whole trail",
    first_last: "first and last decision",
    generated_by: "Made by sovra report. Figures come from the audit trail unless marked as read from the hub.",
    summary: "Summary",
    decisions_in_period: "Decisions in the period",
    chain: "Chain verification",
    chain_intact: "Chain intact",
    chain_broken: "Chain BROKEN",
    verified_records: "Records verified",
    head: "Head (anchor this hash outside the cluster)",
    untrusted: "Decisions in this report at or after the break (cannot be trusted)",
    checkpoint: "Last checkpoint",
    no_checkpoint: "No checkpoint in the trail.",
    checkpoint_unverified_no_key: "A checkpoint is in the trail; its signature was not checked: no key was given (--key).",
    checkpoint_unverified_unsupported: "A checkpoint is in the trail; its signature was not checked: this build cannot check checkpoint signatures.",
    checkpoint_valid: "Signature valid",
    checkpoint_invalid: "Checkpoint INVALID",
    skipped_lines: "Lines skipped",
    unknown_action: "unknown action",
    unreadable: "unreadable lines",
    placements: "Placements at the end of the period",
    placements_note: "One placement is one workload on one cluster, replayed from the trail: the last Placed or Moved of a workload says where it runs; Refused and Released, that it runs nowhere.",
    workloads_placed: "Workloads placed",
    placements_total: "Placements",
    by_class: "Per class",
    by_namespace: "Per namespace",
    by_cluster: "Per cluster",
    by_country: "Per country",
    by_provider: "Per provider",
    unknown: "unknown",
    no_facts: "Country and provider need the clusters: pass --clusters FILE (SovereignCluster manifests) or --live. Every placement is counted as unknown.",
    without_facts: "Clusters without known country and provider",
    refusals: "Refusals and their reasons",
    refused_workloads: "Workloads refused",
    reasons: "Reasons",
    violations: "Violations",
    violations_over_time: "Violations and losses of sovereignty over time",
    exit: "Stranded and exit-ready workloads",
    exit_needs_live: "Exit readiness is not in the audit trail: run with --live to read it from the hub.",
    live_workloads: "Workloads on the hub now",
    live_by_provider: "Placements on the hub now, per provider",
    stranded: "Stranded (no compliant cluster of another provider)",
    exit_ready: "Exit-ready",
    exit_unknown: "Placed, exit readiness not yet known",
    alternatives: "alternatives",
    invalid_objects: "Objects skipped (do not match their CRD)",
    workloads: "Decisions per workload",
    runs_on: "runs on",
    runs_nowhere: "runs nowhere",
    none: "none",
    time: "Time",
    action: "Action",
    object: "Object",
    class: "Class",
    clusters: "Clusters",
    pools: "Pools",
    actions: [
        "Placed",
        "Moved",
        "Refused",
        "Violation",
        "Sovereignty lost",
        "Released",
        "Checkpoint",
    ],
};

static NL: Words = Words {
    code: "nl",
    title: "Sovra plaatsingsrapport",
    subtitle: "Waar gevoelige workloads zijn geplaatst, geweigerd en in overtreding aangetroffen, volgens de hash-geketende audittrail",
    trail: "Audittrail",
    period: "Periode",
    whole_trail: "de hele trail",
    first_last: "eerste en laatste besluit",
    generated_by: "Gemaakt door sovra report. Cijfers komen uit de audittrail, tenzij vermeld dat ze van de hub zijn gelezen.",
    summary: "Samenvatting",
    decisions_in_period: "Besluiten in de periode",
    chain: "Controle van de keten",
    chain_intact: "Keten intact",
    chain_broken: "Keten GEBROKEN",
    verified_records: "Gecontroleerde regels",
    head: "Kop (leg deze hash buiten het cluster vast)",
    untrusted: "Besluiten in dit rapport vanaf de breuk (niet betrouwbaar)",
    checkpoint: "Laatste checkpoint",
    no_checkpoint: "Geen checkpoint in de trail.",
    checkpoint_unverified_no_key: "Er staat een checkpoint in de trail; de handtekening is niet gecontroleerd: geen sleutel opgegeven (--key).",
    checkpoint_unverified_unsupported: "Er staat een checkpoint in de trail; de handtekening is niet gecontroleerd: deze versie kan checkpointhandtekeningen nog niet controleren.",
    checkpoint_valid: "Handtekening geldig",
    checkpoint_invalid: "Checkpoint ONGELDIG",
    skipped_lines: "Overgeslagen regels",
    unknown_action: "onbekende actie",
    unreadable: "onleesbare regels",
    placements: "Plaatsingen aan het eind van de periode",
    placements_note: "Eén plaatsing is één workload op één cluster, nagespeeld uit de trail: de laatste Geplaatst of Verplaatst van een workload zegt waar die draait; Geweigerd en Vrijgegeven dat die nergens draait.",
    workloads_placed: "Geplaatste workloads",
    placements_total: "Plaatsingen",
    by_class: "Per klasse",
    by_namespace: "Per namespace",
    by_cluster: "Per cluster",
    by_country: "Per land",
    by_provider: "Per leverancier",
    unknown: "onbekend",
    no_facts: "Land en leverancier vragen de clusters: geef --clusters BESTAND (SovereignCluster-manifesten) of --live. Elke plaatsing telt als onbekend.",
    without_facts: "Clusters zonder bekend land en leverancier",
    refusals: "Weigeringen en hun redenen",
    refused_workloads: "Geweigerde workloads",
    reasons: "Redenen",
    violations: "Overtredingen",
    violations_over_time: "Overtredingen en verlies van soevereiniteit in de tijd",
    exit: "Vastzittende en exit-gereede workloads",
    exit_needs_live: "Exit-gereedheid staat niet in de audittrail: gebruik --live om die van de hub te lezen.",
    live_workloads: "Workloads nu op de hub",
    live_by_provider: "Plaatsingen nu op de hub, per leverancier",
    stranded: "Vastzittend (geen passend cluster van een andere leverancier)",
    exit_ready: "Exit-gereed",
    exit_unknown: "Geplaatst, exit-gereedheid nog niet bekend",
    alternatives: "alternatieven",
    invalid_objects: "Overgeslagen objecten (passen niet bij hun CRD)",
    workloads: "Besluiten per workload",
    runs_on: "draait op",
    runs_nowhere: "draait nergens",
    none: "geen",
    time: "Tijd",
    action: "Actie",
    object: "Object",
    class: "Klasse",
    clusters: "Clusters",
    pools: "Pools",
    actions: [
        "Geplaatst",
        "Verplaatst",
        "Geweigerd",
        "Overtreding",
        "Soevereiniteit verloren",
        "Vrijgegeven",
        "Controlepunt",
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn all(w: &Words) -> Vec<&'static str> {
        let mut all = vec![
            w.title,
            w.subtitle,
            w.trail,
            w.period,
            w.summary,
            w.chain,
            w.checkpoint,
            w.no_checkpoint,
            w.placements,
            w.by_class,
            w.by_country,
            w.by_provider,
            w.refusals,
            w.violations,
            w.violations_over_time,
            w.exit,
            w.exit_needs_live,
            w.workloads,
            w.no_facts,
        ];
        all.extend(AuditAction::ALL.map(|a| w.action_name(a)));
        all
    }

    #[test]
    fn every_heading_has_words_in_both_languages() {
        for lang in [Lang::En, Lang::Nl] {
            for word in all(words(lang)) {
                assert!(!word.trim().is_empty(), "{lang:?} has an empty word");
            }
        }
    }

    #[test]
    fn dutch_headings_differ_from_the_english_ones() {
        let (en, nl) = (words(Lang::En), words(Lang::Nl));
        assert_eq!((en.code, nl.code), ("en", "nl"));
        assert_eq!(nl.title, "Sovra plaatsingsrapport");
        assert_eq!(nl.action_name(AuditAction::Refused), "Geweigerd");
        assert_eq!(
            en.action_name(AuditAction::SovereigntyLost),
            "Sovereignty lost"
        );
        let same: Vec<_> = all(en)
            .into_iter()
            .zip(all(nl))
            .filter(|(e, n)| e == n)
            .collect();
        assert!(same.is_empty(), "untranslated: {same:?}");
    }
}
