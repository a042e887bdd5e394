//! YAML with source positions in, and YAML out exactly as `kubectl kustomize` prints it.

pub mod emit;
pub mod parse;
pub mod scalar;

pub use emit::{key_cmp, to_yaml, to_yaml_stream};
pub use parse::{
    Document, Duplicates, Pos, Positions, YamlError, escape_pointer, parse_documents,
    parse_documents_with, rename_pointers,
};

/// A fast non-cryptographic hasher (FxHash) for the renderer's internal string-keyed maps;
/// keys come from the repository being rendered, and a slow map only costs time.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type FxBuild = std::hash::BuildHasherDefault<FxHasher>;
/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;
