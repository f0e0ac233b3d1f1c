//! Chat names: what a name may contain, and the key that makes two names the same.
//!
//! Two names are the same name when their keys are equal: the key is the name in Unicode NFC,
//! case-folded (`Bob` and `bob` collide, as do `é` typed precomposed and decomposed). Names with
//! control, zero-width or bidirectional-override characters are refused outright: they render as
//! something they are not (`bob\u{200b}` looks like `bob`, `\u{202e}boB` like `Bob` reversed).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard::SessionId;
use unicode_normalization::UnicodeNormalization;

/// The longest name or room name, in characters.
pub(crate) const MAX_NAME: usize = 32;

/// Whether `c` is a control character, an invisible formatting one (zero-width spaces and
/// joiners, the byte order mark, soft hyphen), or a bidirectional control.
fn is_deceptive(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
            | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// A name or room name as typed, checked and trimmed: answers it in NFC.
///
/// # Errors
///
/// A message for the user when it is empty, too long or holds a deceptive character.
pub(crate) fn valid(what: &str, value: &str) -> Result<String, String> {
    let value: String = value.trim().nfc().collect();
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if value.chars().count() > MAX_NAME {
        return Err(format!("the {what} is over {MAX_NAME} characters"));
    }
    if value.chars().any(is_deceptive) {
        return Err(format!(
            "the {what} holds a control, invisible or direction-changing character"
        ));
    }
    Ok(value)
}

/// The key two names share when they are the same name: NFC, then case-folded, then NFC again
/// (folding can undo the composition).
pub(crate) fn key(name: &str) -> String {
    name.nfc().flat_map(char::to_lowercase).nfc().collect()
}

/// The names in use, by key: each belongs to one session until it disconnects.
#[derive(Debug, Clone, Default)]
pub(crate) struct Names(Arc<Mutex<HashMap<String, SessionId>>>);

impl Names {
    /// Gives `name` to session `id`; answers `false` when another session has a name with the
    /// same key.
    pub(crate) fn claim(&self, name: &str, id: SessionId) -> bool {
        let mut names = self.0.lock();
        let holder = names.entry(key(name)).or_insert(id);
        *holder == id
    }

    /// Frees `name` if session `id` holds it.
    pub(crate) fn release(&self, name: &str, id: SessionId) {
        let mut names = self.0.lock();
        let key = key(name);
        if names.get(&key) == Some(&id) {
            names.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_share_a_key_or_are_refused() {
        assert_eq!(key("Bob"), key("bob"));
        assert_eq!(key("BOB"), key("bob"));
        assert_eq!(key("Jos\u{0065}\u{0301}"), key("jos\u{00e9}"));
        for deceptive in ["bob\u{200b}", "\u{202e}boB", "a\u{0007}b", "bo\u{feff}b", "bob\u{2066}"] {
            assert!(valid("name", deceptive).is_err(), "{deceptive:?} passed");
        }
        assert_eq!(valid("name", "  Zoë  ").as_deref(), Ok("Zoë"));
        assert!(valid("name", &"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn a_name_belongs_to_one_session_until_released() {
        let names = Names::default();
        let (a, b) = (SessionId::next(), SessionId::next());
        assert!(names.claim("Ann", a));
        assert!(names.claim("ann", a), "its own name again");
        assert!(!names.claim("ANN", b));
        names.release("Ann", b);
        assert!(!names.claim("ann", b), "only the holder releases");
        names.release("Ann", a);
        assert!(names.claim("ann", b));
    }
}
