//! The kernel command line (`/chosen/bootargs`): space-separated `key=value` words and bare
//! flags. Parsing only; each subsystem asks for its own keys.

/// A parsed view of the command line.
#[derive(Clone, Copy, Debug)]
pub struct BootArgs<'a>(&'a str);

impl<'a> BootArgs<'a> {
    pub fn new(line: &'a str) -> Self {
        BootArgs(line)
    }

    /// The value of the last `key=value` word for `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0
            .split_ascii_whitespace()
            .filter_map(|word| word.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .next_back()
    }

    /// Whether the bare word `flag` (or `flag=…`) appears.
    pub fn has(&self, flag: &str) -> bool {
        self.0
            .split_ascii_whitespace()
            .any(|word| word == flag || word.split_once('=').is_some_and(|(k, _)| k == flag))
    }

    /// The value of `key` as an integer, if present and well formed.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        let v = self.get(key)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        }
    }

    /// The whole line.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// Verbosity of the kernel log, from `loglevel=` (a name or 0-5).
pub fn log_level(args: &BootArgs<'_>) -> log::LevelFilter {
    match args.get("loglevel") {
        Some("off" | "0") => log::LevelFilter::Off,
        Some("error" | "1") => log::LevelFilter::Error,
        Some("warn" | "2") => log::LevelFilter::Warn,
        Some("info" | "3") => log::LevelFilter::Info,
        Some("debug" | "4") => log::LevelFilter::Debug,
        Some("trace" | "5") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

/// Timer ticks per second, from `hz=` (default 100, clamped to 10-1000).
pub fn hz(args: &BootArgs<'_>) -> u64 {
    args.get_u64("hz").unwrap_or(100).clamp(10, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_and_flags() {
        let a = BootArgs::new("exit=semihosting  loglevel=debug halt-after=boot quiet hz=250");
        assert_eq!(a.get("exit"), Some("semihosting"));
        assert_eq!(a.get("halt-after"), Some("boot"));
        assert!(a.has("quiet"));
        assert!(a.has("hz"));
        assert!(!a.has("loud"));
        assert_eq!(log_level(&a), log::LevelFilter::Debug);
        assert_eq!(hz(&a), 250);
    }

    #[test]
    fn last_value_wins_and_numbers_parse() {
        let a = BootArgs::new("hz=50 hz=0x64 x=");
        assert_eq!(a.get_u64("hz"), Some(100));
        assert_eq!(a.get("x"), Some(""));
        assert_eq!(a.get_u64("x"), None);
    }

    #[test]
    fn defaults_and_clamps() {
        let a = BootArgs::new("");
        assert_eq!(log_level(&a), log::LevelFilter::Info);
        assert_eq!(hz(&a), 100);
        assert_eq!(hz(&BootArgs::new("hz=1")), 10);
        assert_eq!(hz(&BootArgs::new("hz=100000")), 1000);
        assert_eq!(
            log_level(&BootArgs::new("loglevel=nonsense")),
            log::LevelFilter::Info
        );
    }
}
