use rand::Rng;
use rand::seq::IndexedRandom;

/// A run id: 32 lowercase hex characters, as MLflow makes them.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A logged-model id: `m-` followed by 32 lowercase hex characters.
pub fn new_logged_model_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

/// A hyphenated UUID v4: MLflow's webhook and webhook delivery ids.
pub fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// True when `id` has the shape of a run id; anything else cannot name a run.
pub fn is_run_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

const ADJECTIVES: &[&str] = &[
    "amazing", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fast", "gentle",
    "glad", "grand", "honest", "keen", "kind", "lively", "lucky", "merry", "nimble", "polite",
    "proud", "quick", "quiet", "rare", "sharp", "shy", "smooth", "stable", "steady", "sunny",
    "swift", "tidy", "vivid", "warm", "wise", "zesty",
];

const NOUNS: &[&str] = &[
    "ant", "bass", "bear", "bee", "carp", "cat", "colt", "crab", "crow", "deer", "dog", "dove",
    "eel", "elk", "finch", "fox", "frog", "goat", "hare", "hawk", "hen", "jay", "koi", "lamb",
    "lark", "lynx", "mole", "moth", "newt", "owl", "ram", "seal", "slug", "snail", "swan", "toad",
    "trout", "wasp", "wolf", "wren", "yak",
];

/// A human-friendly run name such as `swift-owl-417`, used when the client gives none.
pub fn random_run_name() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quick");
    let noun = NOUNS.choose(&mut rng).copied().unwrap_or("fox");
    format!("{adjective}-{noun}-{}", rng.random_range(0..1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_32_hex() {
        let id = new_run_id();
        assert!(is_run_id(&id), "{id}");
        assert!(!is_run_id("../etc"));
    }

    #[test]
    fn logged_model_ids_have_prefix() {
        let id = new_logged_model_id();
        assert!(id.starts_with("m-") && is_run_id(&id[2..]));
    }

    #[test]
    fn run_names_have_three_parts() {
        assert_eq!(random_run_name().split('-').count(), 3);
    }
}
