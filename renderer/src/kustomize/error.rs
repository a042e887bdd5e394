//! Render errors: always a file, a line when known, and the kustomization chain.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file is not valid YAML or not the expected shape.
    Yaml,
    /// A kustomization has a field kustomize does not know.
    UnknownField,
    /// A referenced file or directory does not exist.
    Missing,
    /// A path leaves the directory kustomize allows (its load restrictions).
    OutsideRoot,
    /// Kustomizations include each other.
    Cycle,
    /// Two objects with the same kind, namespace and name.
    DuplicateId,
    /// A remote base, exec/container plugin, helm chart, ...
    NotSupported,
    /// Anything else kustomize rejects (bad values, missing targets, ...).
    Invalid,
}

/// A failure to render, naming the file and line, and the chain of kustomization files
/// (outermost first) through which that file was reached.
#[derive(Debug, Clone, thiserror::Error)]
pub struct RenderError {
    pub kind: ErrorKind,
    pub file: String,
    /// 1-based; 0 when the failure has no line (e.g. a missing directory).
    pub line: u32,
    pub col: u32,
    pub message: String,
    pub chain: Vec<String>,
}

impl RenderError {
    pub fn new(kind: ErrorKind, file: &str, line: u32, message: impl Into<String>) -> Self {
        RenderError {
            kind,
            file: file.to_string(),
            line,
            col: 0,
            message: message.into(),
            chain: vec![],
        }
    }
    pub fn at(mut self, line: u32, col: u32) -> Self {
        self.line = line;
        self.col = col;
        self
    }
    pub fn with_chain(mut self, chain: &[String]) -> Self {
        if self.chain.is_empty() {
            self.chain = chain.to_vec();
        }
        self
    }
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.col > 0 {
                write!(f, ":{}", self.col)?;
            }
        }
        write!(f, ": {}", self.message)?;
        if !self.chain.is_empty() {
            write!(f, " (kustomization chain: {})", self.chain.join(" -> "))?;
        }
        Ok(())
    }
}
