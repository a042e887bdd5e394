//! The one place output is written. Subcommands never call `println!`: they hand results to
//! the printer so `--quiet`, `--verbose`, color and progress behave the same everywhere.
//!
//! Results (rendered YAML, diffs) go to stdout; messages and progress go to stderr so that
//! `kubectl gitops render … | kubectl apply -f -` stays clean.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::terminal::for_terminal;
use crate::constants::ENV_NO_COLOR;

#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Output options")]
pub struct OutputArgs {
    /// Print only results and errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Explain what is being done
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to color output; NO_COLOR always disables it
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when writing to a terminal
    #[default]
    Auto,
    /// Color even when piped (NO_COLOR still wins)
    Always,
    /// Never color
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The few styles we use; ANSI codes are spelled out here rather than pulling in a crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Bold,
    Red,
    Green,
    Yellow,
    Cyan,
    Dim,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Red => "31",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Cyan => "36",
            Style::Dim => "2",
        }
    }

    /// Wraps `text` in this style when `enabled`; borrows otherwise so the common
    /// (piped, uncolored) case does not allocate.
    pub fn paint(self, text: &str, enabled: bool) -> Cow<'_, str> {
        if enabled && !text.is_empty() {
            Cow::Owned(format!("\x1b[{}m{text}\x1b[0m", self.code()))
        } else {
            Cow::Borrowed(text)
        }
    }
}

/// Whether to emit ANSI colors. NO_COLOR beats even `--color=always`: a user who set it
/// globally should never have to chase a flag in a script.
pub fn use_color(choice: ColorChoice, is_tty: bool, no_color: Option<&OsStr>) -> bool {
    if no_color.is_some_and(|v| !v.is_empty()) {
        return false;
    }
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_tty,
    }
}

type Sink = Mutex<Box<dyn Write + Send>>;

pub struct Printer {
    verbosity: Verbosity,
    color_stdout: bool,
    color_stderr: bool,
    progress: bool,
    out: Sink,
    err: Sink,
}

impl Printer {
    /// The printer for a real process: stdout/stderr, TTY detection and `NO_COLOR`.
    pub fn from_args(args: &OutputArgs) -> Self {
        let verbosity = match (args.quiet, args.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Verbose,
            (false, false) => Verbosity::Normal,
        };
        let no_color = std::env::var_os(ENV_NO_COLOR);
        let stderr_tty = io::stderr().is_terminal();
        Self {
            verbosity,
            color_stdout: use_color(args.color, io::stdout().is_terminal(), no_color.as_deref()),
            color_stderr: use_color(args.color, stderr_tty, no_color.as_deref()),
            progress: stderr_tty && verbosity != Verbosity::Quiet,
            out: Mutex::new(Box::new(io::stdout())),
            err: Mutex::new(Box::new(io::stderr())),
        }
    }

    /// A printer writing into arbitrary sinks, for tests. Progress is always hidden.
    pub fn with_writers(
        verbosity: Verbosity,
        color: bool,
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
    ) -> Self {
        Self {
            verbosity,
            color_stdout: color,
            color_stderr: color,
            progress: false,
            out: Mutex::new(out),
            err: Mutex::new(err),
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        self.verbosity
    }

    /// Whether results written with [`Printer::result`] may contain ANSI codes.
    pub fn color(&self) -> bool {
        self.color_stdout
    }

    /// Writes a result to stdout verbatim. Never suppressed: `--quiet` silences chatter, not
    /// the answer. Errors (a closed pipe) go back to the caller; see [`is_broken_pipe`].
    pub fn result(&self, text: &str) -> io::Result<()> {
        let text = for_terminal(text, self.color_stdout);
        let mut out = lock(&self.out);
        out.write_all(text.as_bytes())?;
        out.flush()
    }

    /// A status line on stderr, hidden by `--quiet`.
    pub fn info(&self, message: &str) {
        if self.verbosity >= Verbosity::Normal {
            self.line(message);
        }
    }

    /// Detail shown only with `--verbose`.
    pub fn verbose(&self, message: &str) {
        if self.verbosity >= Verbosity::Verbose {
            self.line(&Style::Dim.paint(message, self.color_stderr));
        }
    }

    pub fn warn(&self, message: &str) {
        if self.verbosity >= Verbosity::Normal {
            let label = Style::Yellow.paint("warning", self.color_stderr);
            self.line(&format!(
                "{}: {message}",
                Style::Bold.paint(&label, self.color_stderr)
            ));
        }
    }

    /// Prints an error and its causes, uv-style. Shown even with `--quiet`.
    pub fn error(&self, err: &anyhow::Error) {
        self.line(&self.format_error(err));
    }

    pub fn format_error(&self, err: &anyhow::Error) -> String {
        let label = Style::Red.paint("error", self.color_stderr);
        let mut text = format!("{}: {err}", Style::Bold.paint(&label, self.color_stderr));
        for cause in err.chain().skip(1) {
            text.push_str(&format!(
                "\n  {} {cause}",
                Style::Bold.paint("Caused by:", self.color_stderr)
            ));
        }
        text
    }

    /// A progress bar on stderr; hidden when stderr is not a terminal or with `--quiet`, so
    /// logs and CI output never fill up with carriage returns.
    pub fn progress(&self, len: u64, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len}") {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A spinner on stderr for a step of unknown length (rendering, discovery, listing);
    /// hidden exactly when [`Printer::progress`] is.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    fn line(&self, text: &str) {
        let text = for_terminal(text, self.color_stderr);
        let mut err = lock(&self.err);
        // Nothing sensible is left to do when stderr itself is gone.
        let _ = writeln!(err, "{text}");
    }
}

fn lock(sink: &Sink) -> std::sync::MutexGuard<'_, Box<dyn Write + Send>> {
    // A panic while printing leaves the writer usable; keep going rather than double-panic.
    sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// True when the error comes from writing into a pipe the reader already closed.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|io_err| io_err.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A cloneable in-memory sink so a test can read what the printer wrote.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn printer(verbosity: Verbosity, color: bool) -> (Printer, Shared, Shared) {
        let (out, err) = (Shared::default(), Shared::default());
        let p = Printer::with_writers(
            verbosity,
            color,
            Box::new(out.clone()),
            Box::new(err.clone()),
        );
        (p, out, err)
    }

    /// Issue #14: annotation and status text from the cluster reached the terminal with its
    /// escape sequences (clear screen, window title).
    #[test]
    fn escape_sequences_from_the_cluster_never_reach_the_terminal() {
        let reason = "INC-1\u{1b}[2J\u{1b}]0;owned\u{7} fixed";
        for color in [false, true] {
            let (p, out, err) = printer(Verbosity::Normal, color);
            p.result(&format!("reason: {reason}\n")).unwrap();
            p.warn(reason);
            assert_eq!(out.text(), "reason: INC-1 fixed\n");
            assert!(!err.text().contains("[2J") && !err.text().contains("owned"));
            assert!(err.text().contains("INC-1 fixed"));
        }
    }

    #[test]
    fn no_color_wins_over_always() {
        assert!(!use_color(ColorChoice::Always, true, Some(OsStr::new("1"))));
        assert!(use_color(ColorChoice::Always, false, None));
        // no-color.org: an empty value does not count.
        assert!(use_color(ColorChoice::Auto, true, Some(OsStr::new(""))));
        assert!(!use_color(ColorChoice::Auto, false, None));
        assert!(!use_color(ColorChoice::Never, true, None));
    }

    #[test]
    fn quiet_hides_info_and_warnings_but_not_results_or_errors() {
        let (p, out, err) = printer(Verbosity::Quiet, false);
        p.info("rendering");
        p.warn("careful");
        p.verbose("detail");
        p.result("kind: Service\n").unwrap();
        p.error(&anyhow::anyhow!("boom"));
        assert_eq!(out.text(), "kind: Service\n");
        assert_eq!(err.text(), "error: boom\n");
    }

    #[test]
    fn verbose_shows_everything() {
        let (p, _, err) = printer(Verbosity::Verbose, false);
        p.info("a");
        p.verbose("b");
        p.warn("c");
        assert_eq!(err.text(), "a\nb\nwarning: c\n");
    }

    #[test]
    fn normal_hides_verbose() {
        let (p, _, err) = printer(Verbosity::Normal, false);
        p.verbose("detail");
        p.info("status");
        assert_eq!(err.text(), "status\n");
    }

    #[test]
    fn errors_list_their_causes() {
        let (p, _, _) = printer(Verbosity::Normal, false);
        let err = anyhow::anyhow!("inner").context("outer");
        assert_eq!(p.format_error(&err), "error: outer\n  Caused by: inner");
    }

    #[test]
    fn color_adds_ansi_only_when_enabled() {
        let (plain, _, _) = printer(Verbosity::Normal, false);
        let (colored, _, _) = printer(Verbosity::Normal, true);
        assert!(!plain.format_error(&anyhow::anyhow!("x")).contains('\x1b'));
        assert!(
            colored
                .format_error(&anyhow::anyhow!("x"))
                .contains("\x1b[31m")
        );
        assert_eq!(Style::Green.paint("", true), "");
    }

    #[test]
    fn broken_pipe_is_recognised_through_context() {
        let err =
            anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn progress_is_hidden_for_non_terminals() {
        let (p, _, _) = printer(Verbosity::Normal, false);
        assert!(p.progress(3, "objects").is_hidden());
        assert!(p.spinner("rendering").is_hidden());
    }
}
