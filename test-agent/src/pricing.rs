//! Token counts that match a wanted cost.
//!
//! The agent reports `total_cost_usd` exactly as asked (`@cost=`), and its
//! `assistant` lines carry `usage` that, priced with the table below, adds up
//! to that cost (each `message.id` counted once) within a fraction of a
//! cent's millionth. The table is the default of the service's cost estimator
//! (`src/runner/stream_json.rs`, `PriceTable`): Anthropic's list prices in USD
//! per million tokens, a model taking the longest key its name contains.
//!
//! | key | input | output | cache write | cache read |
//! |---|---|---|---|---|
//! | `opus` | 15 | 75 | 18.75 | 1.50 |
//! | `opus-4-5`, `opus-4-6` | 5 | 25 | 6.25 | 0.50 |
//! | `sonnet` (and any unknown model) | 3 | 15 | 3.75 | 0.30 |
//! | `haiku` | 1 | 5 | 1.25 | 0.10 |
//! | `3-5-haiku` | 0.80 | 4 | 1 | 0.08 |
//! | `3-haiku` | 0.25 | 1.25 | 0.30 | 0.03 |

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_write: f64,
    pub cache_read: f64,
}

const SONNET: Price = Price {
    input: 3.0,
    output: 15.0,
    cache_write: 3.75,
    cache_read: 0.30,
};

const TABLE: [(&str, Price); 7] = [
    (
        "opus",
        Price {
            input: 15.0,
            output: 75.0,
            cache_write: 18.75,
            cache_read: 1.50,
        },
    ),
    (
        "opus-4-5",
        Price {
            input: 5.0,
            output: 25.0,
            cache_write: 6.25,
            cache_read: 0.50,
        },
    ),
    (
        "opus-4-6",
        Price {
            input: 5.0,
            output: 25.0,
            cache_write: 6.25,
            cache_read: 0.50,
        },
    ),
    ("sonnet", SONNET),
    (
        "haiku",
        Price {
            input: 1.0,
            output: 5.0,
            cache_write: 1.25,
            cache_read: 0.10,
        },
    ),
    (
        "3-5-haiku",
        Price {
            input: 0.80,
            output: 4.0,
            cache_write: 1.0,
            cache_read: 0.08,
        },
    ),
    (
        "3-haiku",
        Price {
            input: 0.25,
            output: 1.25,
            cache_write: 0.30,
            cache_read: 0.03,
        },
    ),
];

/// The price of `model`: the longest key of the table its name contains,
/// else Sonnet's.
pub fn price_for(model: &str) -> Price {
    let model = model.to_ascii_lowercase();
    TABLE
        .iter()
        .filter(|(key, _)| model.contains(key))
        .max_by_key(|(key, _)| key.len())
        .map(|(_, price)| *price)
        .unwrap_or(SONNET)
}

/// Token counts of one message (or their sum over a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub fn cost_usd(&self, price: &Price) -> f64 {
        // Token counts are far below 2^53: the conversions are exact.
        (self.input_tokens as f64 * price.input
            + self.output_tokens as f64 * price.output
            + self.cache_creation_input_tokens as f64 * price.cache_write
            + self.cache_read_input_tokens as f64 * price.cache_read)
            / 1_000_000.0
    }

    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
    }
}

/// Token counts whose price is `cost` (to within half a cache-read token):
/// about 60 % of it output, 28 % cache writes, 6 % input, 6 % cache reads.
pub fn usage_for_cost(cost: f64, price: &Price) -> Usage {
    if !cost.is_finite() || cost <= 0.0 {
        return Usage::default();
    }
    let per_token = |per_million: f64| per_million / 1_000_000.0;
    // Takes up to `share` of what is left in tokens at `unit` each.
    let take = |left: &mut f64, share: f64, unit: f64| -> u64 {
        let tokens = (*left * share / unit).floor().max(0.0);
        *left -= tokens * unit;
        // Non-negative and at most cost / unit: the cast cannot overflow.
        tokens as u64
    };
    let mut left = cost;
    let output_tokens = take(&mut left, 0.6, per_token(price.output));
    let cache_creation_input_tokens = take(&mut left, 0.7, per_token(price.cache_write));
    let input_tokens = take(&mut left, 0.5, per_token(price.input));
    let unit = per_token(price.cache_read);
    let cache_read_input_tokens = (left / unit).round().max(0.0) as u64;
    Usage {
        input_tokens,
        output_tokens,
        cache_creation_input_tokens,
        cache_read_input_tokens,
    }
}

/// Splits `cost` over `turns` messages: each message's usage, priced, brings
/// the running total to `cost × turn / turns`, so rounding does not add up.
pub fn usage_per_turn(cost: f64, turns: u32, price: &Price) -> Vec<Usage> {
    let mut priced_so_far = 0.0;
    (1..=turns)
        .map(|turn| {
            let target = cost * f64::from(turn) / f64::from(turns);
            let usage = usage_for_cost(target - priced_so_far, price);
            priced_so_far += usage.cost_usd(price);
            usage
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(price_for("claude-sonnet-4-5"), SONNET);
        assert_eq!(price_for("whatever"), SONNET);
        assert_eq!(price_for("claude-opus-4-1").output, 75.0);
        assert_eq!(price_for("claude-opus-4-5-20251101").output, 25.0);
        assert_eq!(price_for("claude-haiku-4-5").output, 5.0);
        assert_eq!(price_for("claude-3-5-haiku-latest").output, 4.0);
        assert_eq!(price_for("claude-3-haiku-20240307").output, 1.25);
    }

    #[test]
    fn usage_matches_cost() {
        for model in ["claude-sonnet-4-5", "claude-opus-4-1", "claude-3-haiku"] {
            let price = price_for(model);
            for cost in [0.0001, 0.01, 0.25, 1.0, 3.5, 100.0] {
                let usage = usage_for_cost(cost, &price);
                let priced = usage.cost_usd(&price);
                // Off by at most half a cache-read token.
                assert!(
                    (priced - cost).abs() <= price.cache_read / 2e6 + 1e-15,
                    "{model} {cost}: {usage:?} costs {priced}"
                );
                assert!(usage.output_tokens > 0 || cost < 0.001, "{usage:?}");
            }
        }
    }

    #[test]
    fn zero_and_bad_costs_give_no_tokens() {
        for cost in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(usage_for_cost(cost, &SONNET), Usage::default());
        }
    }

    #[test]
    fn turns_add_up_to_cost() {
        for (cost, turns) in [(0.01, 1), (0.25, 3), (0.01, 7), (5.0, 50), (0.0003, 4)] {
            let usages = usage_per_turn(cost, turns, &SONNET);
            assert_eq!(usages.len(), turns as usize);
            let total: f64 = usages.iter().map(|u| u.cost_usd(&SONNET)).sum();
            assert!(
                (total - cost).abs() <= cost * 0.01,
                "{cost} over {turns}: {total}"
            );
            // Spread evenly: no turn is more than twice its share.
            let share = cost / f64::from(turns);
            assert!(usages.iter().all(|u| u.cost_usd(&SONNET) <= 2.0 * share));
        }
    }

    #[test]
    fn usage_adds() {
        let mut total = Usage::default();
        let one = usage_for_cost(0.01, &SONNET);
        total.add(&one);
        total.add(&one);
        assert_eq!(total.output_tokens, 2 * one.output_tokens);
        assert_eq!(
            total.cache_read_input_tokens,
            2 * one.cache_read_input_tokens
        );
    }
}
