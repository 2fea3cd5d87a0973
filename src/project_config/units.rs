//! Typed quantities written with units in the configuration files.
//!
//! Each type parses from the YAML scalar the seed's examples use (quoted or
//! not), keeps an exact integer inside, and displays back in a canonical form.
//! Parsing never rounds silently and never overflows: a value that does not
//! fit, or has more precision than the type keeps, is an error.
//!
//! | type | accepts | stored as |
//! |---|---|---|
//! | [`MemorySize`] | `1024` (bytes), `2Gi`, `512Mi`, `1G`, `100M`, `1.5Gi`; units `k`/`K`, `Ki`, `M`, `Mi`, `G`, `Gi`, `T`, `Ti` (decimal kilo = 1000, `i` = 1024, as Kubernetes) | bytes, `u64` |
//! | [`DurationSpec`] | `600` (seconds), `600s`, `30m`, `1h`, `1h30m`, `1500ms`, `2d`; parts largest unit first, each unit once | milliseconds, [`Duration`] |
//! | [`Money`] | `$5.00`, `5`, `5.5`, `0.25` (US dollars, at most 6 decimals) | micro-dollars, `u64` |
//! | [`CpuCount`] | `2`, `"2"`, `0.5`, `500m` (millicpus, as Kubernetes) | millicpus, `u64` |
//!
//! Lower-case `m`/`g` for memory are refused rather than guessed: Docker reads
//! `2g` as 2 GiB, Kubernetes would read `2m` as 0.002 bytes.
//!
//! [`Money`] is integer micro-dollars so that budget arithmetic (reserve the
//! maximum, settle to the real cost, compare with a daily total) is exact;
//! [`Money::as_usd`] gives the `f64` the agent CLI reports (`total_cost_usd`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A parse failure of one unit value; the message names the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(String);

impl UnitError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Splits `"12.5Gi"` into `("12.5", "Gi")`: the longest leading run of
/// digits and dots, then the rest with surrounding blanks removed.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

/// Parses a non-negative decimal `"12.345"` into `value * 10^scale` exactly.
/// `None` when the text is not such a number, has more than `scale` decimals
/// (unless `truncate`), or overflows.
fn parse_scaled(number: &str, scale: u32) -> Result<u64, &'static str> {
    let (int, frac) = match number.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (number, ""),
    };
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() && frac.is_empty() || !digits_only(int) || !digits_only(frac) {
        return Err("not a number");
    }
    if number.ends_with('.') {
        return Err("not a number");
    }
    let frac_len = u32::try_from(frac.len()).map_err(|_| "too many decimals")?;
    if frac_len > scale {
        return Err("too many decimals");
    }
    let pow = 10u64.checked_pow(scale).ok_or("too large")?;
    let int_value: u64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| "too large")?
    };
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        let raw: u64 = frac.parse().map_err(|_| "too large")?;
        raw.checked_mul(10u64.pow(scale - frac_len))
            .ok_or("too large")?
    };
    int_value
        .checked_mul(pow)
        .and_then(|v| v.checked_add(frac_value))
        .ok_or("too large")
}

/// The scalar forms a unit value may arrive in from YAML.
enum Scalar<'a> {
    Text(&'a str),
    Unsigned(u64),
    Float(f64),
}

/// Deserializes a unit type from a string, an unsigned integer or a float,
/// handing the text (numbers formatted back) to `parse`.
fn deserialize_unit<'de, D, T>(deserializer: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromUnitScalar,
{
    struct UnitVisitor<T> {
        expecting: &'static str,
        marker: std::marker::PhantomData<T>,
    }

    impl<T: FromUnitScalar> Visitor<'_> for UnitVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            T::from_scalar(Scalar::Text(v)).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            T::from_scalar(Scalar::Unsigned(v)).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(format!(
                    "{} cannot be negative (got {v})",
                    self.expecting
                ))),
            }
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
            T::from_scalar(Scalar::Float(v)).map_err(E::custom)
        }
    }

    deserializer.deserialize_any(UnitVisitor {
        expecting,
        marker: std::marker::PhantomData,
    })
}

/// How each unit type turns a YAML scalar into itself.
trait FromUnitScalar: Sized + FromStr<Err = UnitError> {
    /// Name used in messages ("a memory size").
    const WHAT: &'static str;

    /// A bare unsigned integer (YAML `1024`).
    fn from_unsigned(v: u64) -> Result<Self, UnitError>;

    fn from_scalar(scalar: Scalar<'_>) -> Result<Self, UnitError> {
        match scalar {
            Scalar::Text(text) => text.parse(),
            Scalar::Unsigned(v) => Self::from_unsigned(v),
            Scalar::Float(v) if v.is_finite() && v >= 0.0 => format!("{v}").parse(),
            Scalar::Float(v) => Err(UnitError::new(format!(
                "{} must be a non-negative number (got {v})",
                Self::WHAT
            ))),
        }
    }
}

// ---------------------------------------------------------------------------
// MemorySize

/// An amount of memory in bytes (`2Gi`, `512Mi`, `1G`, `1024`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize(u64);

impl MemorySize {
    /// A size of exactly `bytes`.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes (what Docker's `Memory` host setting takes).
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

const MEMORY_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("k", 1_000),
    ("K", 1_000),
    ("Ki", 1 << 10),
    ("M", 1_000_000),
    ("Mi", 1 << 20),
    ("G", 1_000_000_000),
    ("Gi", 1 << 30),
    ("T", 1_000_000_000_000),
    ("Ti", 1 << 40),
];

impl FromStr for MemorySize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let trimmed = text.trim();
        let (number, unit) = split_number(trimmed);
        let Some(&(_, multiplier)) = MEMORY_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(UnitError::new(format!(
                "invalid memory size `{text}`: unknown unit `{unit}` \
                 (use a number of bytes or one of k, Ki, M, Mi, G, Gi, T, Ti, e.g. `2Gi`)"
            )));
        };
        // Up to 9 decimals are kept before multiplying; the result is truncated
        // to whole bytes.
        let scaled = parse_scaled(number, 9)
            .map_err(|why| UnitError::new(format!("invalid memory size `{text}`: {why}")))?;
        let bytes = u128::from(scaled) * u128::from(multiplier) / 1_000_000_000;
        u64::try_from(bytes)
            .map(Self)
            .map_err(|_| UnitError::new(format!("invalid memory size `{text}`: too large")))
    }
}

impl FromUnitScalar for MemorySize {
    const WHAT: &'static str = "a memory size";

    fn from_unsigned(v: u64) -> Result<Self, UnitError> {
        Ok(Self(v))
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_unit(
            deserializer,
            "a memory size such as `2Gi`, `512Mi` or `1024`",
        )
    }
}

impl fmt::Display for MemorySize {
    /// The largest binary unit that divides the size exactly: `2Gi`, `1536Mi`, `1000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [
            ("Ti", 1u64 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ] {
            if self.0 != 0 && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}", self.0)
    }
}

// ---------------------------------------------------------------------------
// DurationSpec

/// A length of time (`600s`, `30m`, `1h30m`, `1500ms`; a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationSpec(Duration);

impl DurationSpec {
    /// A duration of `duration`, truncated to whole milliseconds.
    pub fn new(duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(Duration::from_millis(millis))
    }

    /// A duration of whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The value as a [`Duration`].
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// Units of a duration, largest first, with their length in milliseconds.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

impl FromStr for DurationSpec {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let bad = |why: &str| {
            UnitError::new(format!(
                "invalid duration `{text}`: {why} (write e.g. `600s`, `30m`, `1h30m`, `1500ms`, \
                 or a whole number of seconds)"
            ))
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        if trimmed.bytes().all(|b| b.is_ascii_digit()) {
            let secs: u64 = trimmed.parse().map_err(|_| bad("too large"))?;
            let millis = secs.checked_mul(1_000).ok_or_else(|| bad("too large"))?;
            return Ok(Self(Duration::from_millis(millis)));
        }
        let mut rest = trimmed;
        let mut total: u64 = 0;
        // Index into DURATION_UNITS of the last unit seen: each part must use
        // a strictly smaller unit than the one before (`1h30m`, not `30m1h`).
        let mut last_unit: Option<usize> = None;
        while !rest.is_empty() {
            let digits_end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits_end == 0 {
                return Err(bad("expected a whole number before each unit"));
            }
            let amount: u64 = rest[..digits_end].parse().map_err(|_| bad("too large"))?;
            rest = &rest[digits_end..];
            let unit_end = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_end];
            rest = &rest[unit_end..];
            let Some(index) = DURATION_UNITS.iter().position(|(name, _)| *name == unit) else {
                return Err(if unit.is_empty() {
                    bad("missing unit after a number")
                } else {
                    bad(&format!("unknown unit `{unit}`"))
                });
            };
            if last_unit.is_some_and(|last| index <= last) {
                return Err(bad(
                    "parts must go from the largest unit to the smallest, each once",
                ));
            }
            last_unit = Some(index);
            let part = amount
                .checked_mul(DURATION_UNITS[index].1)
                .ok_or_else(|| bad("too large"))?;
            total = total.checked_add(part).ok_or_else(|| bad("too large"))?;
        }
        Ok(Self(Duration::from_millis(total)))
    }
}

impl FromUnitScalar for DurationSpec {
    const WHAT: &'static str = "a duration";

    fn from_unsigned(v: u64) -> Result<Self, UnitError> {
        v.to_string().parse()
    }

    fn from_scalar(scalar: Scalar<'_>) -> Result<Self, UnitError> {
        match scalar {
            Scalar::Text(text) => text.parse(),
            Scalar::Unsigned(v) => Self::from_unsigned(v),
            Scalar::Float(v) => Err(UnitError::new(format!(
                "invalid duration `{v}`: a bare number is whole seconds; write e.g. `1500ms`"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_unit(deserializer, "a duration such as `600s`, `30m` or `1h30m`")
    }
}

impl fmt::Display for DurationSpec {
    /// Largest units first, zero parts left out: `1h30m`, `1500ms` → `1s500ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut millis = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in DURATION_UNITS {
            let amount = millis / size;
            if amount > 0 {
                write!(f, "{amount}{unit}")?;
                millis %= size;
            }
        }
        Ok(())
    }
}

impl From<DurationSpec> for Duration {
    fn from(value: DurationSpec) -> Self {
        value.0
    }
}

// ---------------------------------------------------------------------------
// Money

/// An amount of US dollars, exact to the micro-dollar (`$5.00`, `5`, `5.5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(u64);

impl Money {
    /// Micro-dollars in one dollar.
    pub const MICROS_PER_USD: u64 = 1_000_000;

    /// An amount of `micros` millionths of a dollar.
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// An amount of whole cents.
    pub const fn from_cents(cents: u64) -> Self {
        Self(cents.saturating_mul(10_000))
    }

    /// The amount in micro-dollars.
    pub const fn micros(self) -> u64 {
        self.0
    }

    /// The amount in dollars as a float, to compare with `total_cost_usd`.
    pub fn as_usd(self) -> f64 {
        let dollars = self.0 / Self::MICROS_PER_USD;
        let micros = self.0 % Self::MICROS_PER_USD;
        u64_to_f64(dollars) + u64_to_f64(micros) / 1e6
    }

    /// Whether the amount is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for Money {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let trimmed = text.trim();
        let number = trimmed.strip_prefix('$').unwrap_or(trimmed).trim_start();
        parse_scaled(number, 6).map(Self).map_err(|why| {
            let why = match why {
                "too many decimals" => "at most 6 decimals (micro-dollars)",
                other => other,
            };
            UnitError::new(format!(
                "invalid amount `{text}`: {why} (write US dollars, e.g. `$5.00` or `5`)"
            ))
        })
    }
}

impl FromUnitScalar for Money {
    const WHAT: &'static str = "an amount of money";

    fn from_unsigned(v: u64) -> Result<Self, UnitError> {
        v.checked_mul(Self::MICROS_PER_USD)
            .map(Self)
            .ok_or_else(|| UnitError::new(format!("invalid amount `{v}`: too large")))
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_unit(deserializer, "an amount of US dollars such as `$5.00`")
    }
}

impl fmt::Display for Money {
    /// `$5.00`, `$0.25`, `$0.001234` (cents always shown, more digits only when needed).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = self.0 / Self::MICROS_PER_USD;
        let micros = self.0 % Self::MICROS_PER_USD;
        if micros.is_multiple_of(10_000) {
            write!(f, "${dollars}.{:02}", micros / 10_000)
        } else {
            let digits = format!("{micros:06}");
            write!(f, "${dollars}.{}", digits.trim_end_matches('0'))
        }
    }
}

/// `x` as the nearest `f64`, without an `as` cast.
fn u64_to_f64(x: u64) -> f64 {
    let high = u32::try_from(x >> 32).unwrap_or(u32::MAX);
    let low = u32::try_from(x & 0xFFFF_FFFF).unwrap_or(0);
    f64::from(high) * 4_294_967_296.0 + f64::from(low)
}

// ---------------------------------------------------------------------------
// CpuCount

/// A number of CPUs, exact to the millicpu (`2`, `"2"`, `0.5`, `500m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuCount(u64);

impl CpuCount {
    /// `millis` thousandths of a CPU.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Thousandths of a CPU.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Billionths of a CPU, what Docker's `NanoCpus` host setting takes.
    pub const fn nano_cpus(self) -> u64 {
        self.0.saturating_mul(1_000_000)
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl FromStr for CpuCount {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, UnitError> {
        let trimmed = text.trim();
        let bad = |why: &str| {
            UnitError::new(format!(
                "invalid CPU count `{text}`: {why} (write e.g. `2`, `0.5` or `500m`)"
            ))
        };
        let (number, unit) = split_number(trimmed);
        match unit {
            "m" => {
                if number.contains('.') {
                    return Err(bad("millicpus must be a whole number"));
                }
                parse_scaled(number, 0).map(Self).map_err(&bad)
            }
            "" => parse_scaled(number, 3).map(Self).map_err(|why| {
                bad(match why {
                    "too many decimals" => "at most 3 decimals",
                    other => other,
                })
            }),
            other => Err(bad(&format!("unknown unit `{other}`"))),
        }
    }
}

impl FromUnitScalar for CpuCount {
    const WHAT: &'static str = "a CPU count";

    fn from_unsigned(v: u64) -> Result<Self, UnitError> {
        v.checked_mul(1_000)
            .map(Self)
            .ok_or_else(|| UnitError::new(format!("invalid CPU count `{v}`: too large")))
    }
}

impl<'de> Deserialize<'de> for CpuCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_unit(deserializer, "a CPU count such as `2`, `0.5` or `500m`")
    }
}

impl fmt::Display for CpuCount {
    /// `2` for whole CPUs, `500m` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1_000) {
            write!(f, "{}", self.0 / 1_000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Units {
        memory: Option<MemorySize>,
        timeout: Option<DurationSpec>,
        cost: Option<Money>,
        cpu: Option<CpuCount>,
    }

    fn yaml(text: &str) -> Result<Units, String> {
        serde_saphyr::from_str(text).map_err(|e| e.without_snippet().to_string())
    }

    #[test]
    fn memory_sizes_parse() {
        let cases = [
            ("1024", 1024),
            ("2Gi", 2 << 30),
            ("512Mi", 512 << 20),
            ("1G", 1_000_000_000),
            ("100M", 100_000_000),
            ("4k", 4_000),
            ("4K", 4_000),
            ("4Ki", 4_096),
            ("1T", 1_000_000_000_000),
            ("1Ti", 1 << 40),
            ("1.5Gi", 3 << 29),
            (" 2 Gi ", 2 << 30),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(text.parse::<MemorySize>().unwrap().bytes(), bytes, "{text}");
        }
    }

    #[test]
    fn memory_sizes_refused() {
        for text in [
            "",
            "Gi",
            "2g",
            "2m",
            "2GB",
            "-1Gi",
            "1.2.3G",
            "2 Gi x",
            "1.Gi",
            "99999999999Ti",
        ] {
            let err = text.parse::<MemorySize>().unwrap_err();
            assert!(
                err.to_string().contains("invalid memory size"),
                "{text}: {err}"
            );
        }
        assert!(
            "2g".parse::<MemorySize>()
                .unwrap_err()
                .to_string()
                .contains("unknown unit `g`")
        );
        assert!(
            "99999999999Ti"
                .parse::<MemorySize>()
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn memory_display_is_canonical() {
        assert_eq!(MemorySize::from_bytes(2 << 30).to_string(), "2Gi");
        assert_eq!(MemorySize::from_bytes(1536 << 20).to_string(), "1536Mi");
        assert_eq!(MemorySize::from_bytes(1000).to_string(), "1000");
        assert_eq!(MemorySize::from_bytes(0).to_string(), "0");
    }

    #[test]
    fn durations_parse() {
        let cases = [
            ("600s", 600_000),
            ("30m", 1_800_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("1500ms", 1_500),
            ("600", 600_000),
            ("2d", 172_800_000),
            ("1h0m5s", 3_605_000),
            ("1s500ms", 1_500),
            ("0s", 0),
        ];
        for (text, millis) in cases {
            let parsed: DurationSpec = text.parse().unwrap();
            assert_eq!(
                parsed.as_duration(),
                Duration::from_millis(millis),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_refused() {
        for text in [
            "",
            "s",
            "1.5h",
            "30m1h",
            "1h1h",
            "10x",
            "-5s",
            "1 h",
            "h1",
            "99999999999999999999s",
        ] {
            let err = text.parse::<DurationSpec>().unwrap_err();
            assert!(
                err.to_string().contains("invalid duration"),
                "{text}: {err}"
            );
        }
        assert!(
            "30m1h"
                .parse::<DurationSpec>()
                .unwrap_err()
                .to_string()
                .contains("largest unit")
        );
        assert!(
            "10x"
                .parse::<DurationSpec>()
                .unwrap_err()
                .to_string()
                .contains("unknown unit `x`")
        );
        assert!(
            "18446744073709551615d"
                .parse::<DurationSpec>()
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
    }

    #[test]
    fn duration_display_is_canonical() {
        assert_eq!(
            "1h30m".parse::<DurationSpec>().unwrap().to_string(),
            "1h30m"
        );
        assert_eq!(
            "5400s".parse::<DurationSpec>().unwrap().to_string(),
            "1h30m"
        );
        assert_eq!(
            "1500ms".parse::<DurationSpec>().unwrap().to_string(),
            "1s500ms"
        );
        assert_eq!(DurationSpec::from_secs(0).to_string(), "0s");
        assert!(DurationSpec::from_secs(0).is_zero());
        assert_eq!(
            DurationSpec::new(Duration::from_micros(1_500_700)).as_duration(),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn money_parses() {
        let cases = [
            ("$5.00", 5_000_000),
            ("5", 5_000_000),
            ("5.5", 5_500_000),
            ("$0.25", 250_000),
            (" $ 50 ", 50_000_000),
            ("0.000001", 1),
            (".5", 500_000),
            ("0", 0),
        ];
        for (text, micros) in cases {
            assert_eq!(text.parse::<Money>().unwrap().micros(), micros, "{text}");
        }
        assert!((Money::from_cents(550).as_usd() - 5.5).abs() < 1e-12);
    }

    #[test]
    fn money_refused() {
        for text in [
            "",
            "$",
            "-5",
            "$-5",
            "5.0000001",
            "five",
            "5 USD",
            "1,000",
            "$$5",
            "99999999999999999",
        ] {
            let err = text.parse::<Money>().unwrap_err();
            assert!(err.to_string().contains("invalid amount"), "{text}: {err}");
        }
        assert!(
            "5.0000001"
                .parse::<Money>()
                .unwrap_err()
                .to_string()
                .contains("at most 6 decimals")
        );
    }

    #[test]
    fn money_display() {
        assert_eq!(Money::from_micros(5_000_000).to_string(), "$5.00");
        assert_eq!(Money::from_micros(250_000).to_string(), "$0.25");
        assert_eq!(Money::from_micros(1_234).to_string(), "$0.001234");
        assert_eq!(Money::from_micros(5_500_000).to_string(), "$5.50");
    }

    #[test]
    fn cpu_counts_parse() {
        let cases = [
            ("2", 2_000),
            ("0.5", 500),
            ("500m", 500),
            ("1.25", 1_250),
            ("16", 16_000),
        ];
        for (text, millis) in cases {
            assert_eq!(text.parse::<CpuCount>().unwrap().millis(), millis, "{text}");
        }
        assert_eq!(CpuCount::from_millis(500).nano_cpus(), 500_000_000);
    }

    #[test]
    fn cpu_counts_refused() {
        for text in [
            "",
            "m",
            "two",
            "0.0005",
            "1.5m",
            "2c",
            "-1",
            "99999999999999999999",
        ] {
            let err = text.parse::<CpuCount>().unwrap_err();
            assert!(
                err.to_string().contains("invalid CPU count"),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn cpu_display() {
        assert_eq!(CpuCount::from_millis(2_000).to_string(), "2");
        assert_eq!(CpuCount::from_millis(500).to_string(), "500m");
    }

    #[test]
    fn units_deserialize_from_every_scalar_form() {
        let u = yaml("memory: 1024\ntimeout: 600\ncost: 5\ncpu: 2\n").unwrap();
        assert_eq!(u.memory, Some(MemorySize::from_bytes(1024)));
        assert_eq!(u.timeout, Some(DurationSpec::from_secs(600)));
        assert_eq!(u.cost, Some(Money::from_micros(5_000_000)));
        assert_eq!(u.cpu, Some(CpuCount::from_millis(2_000)));

        let u = yaml("memory: 2Gi\ntimeout: 1h30m\ncost: $5.00\ncpu: \"2\"\n").unwrap();
        assert_eq!(u.memory, Some(MemorySize::from_bytes(2 << 30)));
        assert_eq!(u.timeout, Some(DurationSpec::from_secs(5_400)));
        assert_eq!(u.cost, Some(Money::from_cents(500)));
        assert_eq!(u.cpu, Some(CpuCount::from_millis(2_000)));

        let u = yaml("cost: 5.5\ncpu: 0.5\nmemory: 1.5\n").unwrap();
        assert_eq!(u.cost, Some(Money::from_cents(550)));
        assert_eq!(u.cpu, Some(CpuCount::from_millis(500)));
        assert_eq!(u.memory, Some(MemorySize::from_bytes(1)));

        let u = yaml("cost: '$0.10'\ncpu: 500m\n").unwrap();
        assert_eq!(u.cost, Some(Money::from_cents(10)));
        assert_eq!(u.cpu, Some(CpuCount::from_millis(500)));
    }

    #[test]
    fn units_reject_wrong_scalars_with_a_message() {
        assert!(
            yaml("timeout: 1.5\n")
                .unwrap_err()
                .contains("whole seconds")
        );
        assert!(
            yaml("cost: -5\n")
                .unwrap_err()
                .contains("cannot be negative")
        );
        assert!(yaml("cpu: -0.5\n").unwrap_err().contains("non-negative"));
        assert!(yaml("memory: [1]\n").is_err());
        assert!(yaml("memory: true\n").is_err());
        assert!(yaml("cost: .nan\n").is_err());
        assert!(
            yaml("memory: 2Gx\n")
                .unwrap_err()
                .contains("unknown unit `Gx`")
        );
    }
}
