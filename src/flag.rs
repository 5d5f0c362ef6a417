//! One spelling per flag value. An enum that derives clap's `ValueEnum`
//! (its variants' names, kebab-case) gets `Display` and `FromStr` from
//! [`flag_value!`](crate::flag_value), so that a `--mode`, `--leaf` or
//! `--hub-kind` value is parsed, printed, passed on to a child and named in
//! a summary by one definition; serde's names are checked against it in
//! the tests.

/// The value names of a `ValueEnum`, as "a, b or c".
pub fn expected<T: clap::ValueEnum>() -> String {
    let names: Vec<String> = T::value_variants()
        .iter()
        .filter_map(|v| v.to_possible_value())
        .map(|p| p.get_name().to_string())
        .collect();
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `Display` (the value's flag spelling) and `FromStr` ("unknown NOUN
/// \"x\" (expected a, b or c)") for a `ValueEnum`.
#[macro_export]
macro_rules! flag_value {
    ($t:ty, $noun:literal) => {
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                match ::clap::ValueEnum::to_possible_value(self) {
                    Some(v) => f.write_str(v.get_name()),
                    None => Ok(()),
                }
            }
        }

        impl ::std::str::FromStr for $t {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$t as ::clap::ValueEnum>::from_str(s, false).map_err(|_| {
                    format!(
                        "unknown {} {s:?} (expected {})",
                        $noun,
                        $crate::flag::expected::<$t>()
                    )
                })
            }
        }
    };
}
