//! A stable hash for anything persisted or sent upstream.
//!
//! `std::hash::DefaultHasher` may change its algorithm in any Rust release, so a value derived
//! from it and written to disk (an account file's name) or sent upstream (a session id, a
//! tool-name suffix) could change with a toolchain bump: accounts would be duplicated and ids
//! would change. This module pins the algorithm: 64-bit FNV-1a, as specified in
//! draft-eastlake-fnv (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
//!
//! Why FNV-1a and not a SHA-256 prefix: the inputs are short (emails, refresh tokens, tool
//! names, a first user message), nothing here needs resistance against a chosen-collision
//! attacker (the names are the operator's own accounts and one request's tools, and collisions
//! among tool names are detected anyway), and FNV-1a needs no dependency, is a few lines anyone
//! can check against the published test vectors, and is a `const fn`.
//!
//! The byte sequence hashed is the caller's business and part of the contract: hash
//! [`StableHasher::write`] for raw bytes, [`StableHasher::write_str`] for a string field
//! (its bytes then `0xff`, a byte UTF-8 never contains, so `("ab", "c")` and `("a", "bc")`
//! differ). Never feed a `std::hash::Hash` implementation into it: those are not stable either.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a over the bytes written to it; the same input gives the same value on every
/// platform and every Rust release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl StableHasher {
    /// A hasher with nothing written yet.
    pub(crate) const fn new() -> Self {
        Self(OFFSET_BASIS)
    }

    /// Hash `bytes` as they are.
    pub(crate) const fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(PRIME);
            i += 1;
        }
        self.0 = hash;
    }

    /// Hash one string field: its UTF-8 bytes, then the separator `0xff`.
    pub(crate) const fn write_str(&mut self, text: &str) {
        self.write(text.as_bytes());
        self.write(&[0xff]);
    }

    /// The hash of everything written so far.
    pub(crate) const fn finish(&self) -> u64 {
        self.0
    }
}

/// The 64-bit FNV-1a hash of `bytes`.
pub(crate) const fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hasher = StableHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_fnv1a_64_test_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv, appendix C).
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pinned_values_of_what_the_crate_persists() {
        // Account ids and tool-name suffixes are derived from these; changing them changes
        // file names and upstream names.
        let mut hasher = StableHasher::new();
        hasher.write_str("1//rtoken");
        assert_eq!(hasher.finish(), 0x82bd_e4d0_2003_455e);
        assert_eq!(stable_hash(b"mcp.server/tool") as u32, 0xcc35_eccb);
    }

    #[test]
    fn string_fields_do_not_run_together() {
        let mut ab_c = StableHasher::new();
        ab_c.write_str("ab");
        ab_c.write_str("c");
        let mut a_bc = StableHasher::new();
        a_bc.write_str("a");
        a_bc.write_str("bc");
        assert_ne!(ab_c.finish(), a_bc.finish());
        let mut split = StableHasher::default();
        split.write(b"foo");
        split.write(b"bar");
        assert_eq!(split.finish(), stable_hash(b"foobar"));
    }
}
