//! Routing: a destination's longest matching prefix names an ordered list of carriers, and the
//! route's policy orders them (priority, weighted split, least cost).
//!
//! Pure: the caller supplies the random draw for weighted routes and filters out carriers
//! whose breaker is open, so failover follows the order returned here.

use std::collections::HashMap;

use serde::Deserialize;

/// How a route orders its carriers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutePolicy {
    /// In the order listed: the first is primary, the others fail-over targets.
    #[default]
    Priority,
    /// A weighted random first choice (e.g. 70/30 traffic split), the rest by weight after it.
    Weighted,
    /// Cheapest first, by each carrier's price (ties keep the listed order).
    LeastCost,
}

/// One route as written in the configuration (`[[routes]]`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Destination prefix in E.164 digits without `+` (`"44"`, `"4477"`); `""` matches all.
    pub prefix: String,
    /// Carrier names, in priority order.
    pub carriers: Vec<String>,
    /// How to order them. Default priority.
    #[serde(default)]
    pub policy: RoutePolicy,
    /// Weights for `weighted`, one per carrier. Default equal.
    #[serde(default)]
    pub weights: Vec<u32>,
}

/// A route that does not make sense; the text names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The prefix has characters other than digits.
    #[error("routes[{prefix:?}].prefix: only digits are allowed (no '+')")]
    BadPrefix {
        /// The prefix.
        prefix: String,
    },
    /// Two routes have the same prefix.
    #[error("routes[{prefix:?}]: the prefix appears twice")]
    DuplicatePrefix {
        /// The prefix.
        prefix: String,
    },
    /// A route names a carrier that is not configured.
    #[error("routes[{prefix:?}].carriers: no carrier named {carrier:?}")]
    UnknownCarrier {
        /// The route.
        prefix: String,
        /// The name.
        carrier: String,
    },
    /// A route has no carriers.
    #[error("routes[{prefix:?}].carriers: at least one carrier is needed")]
    NoCarriers {
        /// The route.
        prefix: String,
    },
    /// Weights given, but not one per carrier, or all zero.
    #[error("routes[{prefix:?}].weights: one weight per carrier, not all zero")]
    BadWeights {
        /// The route.
        prefix: String,
    },
}

#[derive(Clone, Debug)]
struct Route {
    carriers: Vec<usize>,
    policy: RoutePolicy,
    weights: Vec<u32>,
}

/// The routing table, validated.
#[derive(Clone, Debug)]
pub struct Router {
    routes: HashMap<String, Route>,
    /// Carrier prices, by index, for least-cost routes.
    prices: Vec<f64>,
    longest_prefix: usize,
}

impl Router {
    /// Builds the table. `carriers` are the configured carrier names with their price per
    /// part; routes refer to carriers by name and are stored by index into that list.
    pub fn new(routes: &[RouteConfig], carriers: &[(&str, f64)]) -> Result<Router, RoutingError> {
        let index: HashMap<&str, usize> = carriers
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (*name, i))
            .collect();
        let mut table = HashMap::new();
        for r in routes {
            let prefix = r.prefix.clone();
            if !prefix.chars().all(|c| c.is_ascii_digit()) {
                return Err(RoutingError::BadPrefix { prefix });
            }
            if r.carriers.is_empty() {
                return Err(RoutingError::NoCarriers { prefix });
            }
            let mut ids = Vec::with_capacity(r.carriers.len());
            for name in &r.carriers {
                let Some(&i) = index.get(name.as_str()) else {
                    return Err(RoutingError::UnknownCarrier {
                        prefix,
                        carrier: name.clone(),
                    });
                };
                ids.push(i);
            }
            let weights = if r.weights.is_empty() {
                vec![1; ids.len()]
            } else {
                r.weights.clone()
            };
            if weights.len() != ids.len() || weights.iter().all(|&w| w == 0) {
                return Err(RoutingError::BadWeights { prefix });
            }
            let route = Route {
                carriers: ids,
                policy: r.policy,
                weights,
            };
            if table.insert(prefix.clone(), route).is_some() {
                return Err(RoutingError::DuplicatePrefix { prefix });
            }
        }
        Ok(Router {
            longest_prefix: table.keys().map(String::len).max().unwrap_or(0),
            routes: table,
            prices: carriers.iter().map(|(_, p)| *p).collect(),
        })
    }

    /// The carriers for `destination` (E.164 digits, a leading `+` ignored), best first, by
    /// the longest matching prefix. Empty when no route matches. `draw` is a random number
    /// for weighted routes.
    pub fn candidates(&self, destination: &str, draw: u64) -> Vec<usize> {
        let digits = destination.strip_prefix('+').unwrap_or(destination);
        let longest = digits.len().min(self.longest_prefix);
        for len in (0..=longest).rev() {
            let Some(prefix) = digits.get(..len) else {
                continue;
            };
            if let Some(route) = self.routes.get(prefix) {
                return self.order(route, draw);
            }
        }
        Vec::new()
    }

    fn order(&self, route: &Route, mut draw: u64) -> Vec<usize> {
        match route.policy {
            RoutePolicy::Priority => route.carriers.clone(),
            RoutePolicy::LeastCost => {
                let mut ordered: Vec<usize> = route.carriers.clone();
                // A stable sort keeps the listed order among equal prices.
                ordered.sort_by(|&a, &b| self.prices[a].total_cmp(&self.prices[b]));
                ordered
            }
            RoutePolicy::Weighted => {
                let mut left: Vec<(usize, u64)> = route
                    .carriers
                    .iter()
                    .zip(&route.weights)
                    .map(|(&c, &w)| (c, u64::from(w)))
                    .collect();
                let mut ordered = Vec::with_capacity(left.len());
                while !left.is_empty() {
                    let total: u64 = left.iter().map(|(_, w)| w).sum();
                    if total == 0 {
                        ordered.extend(left.iter().map(|(c, _)| *c));
                        break;
                    }
                    let mut x = draw % total;
                    // Use different bits of the draw for each place.
                    draw = draw.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
                    let mut pick = 0;
                    for (i, (_, w)) in left.iter().enumerate() {
                        if x < *w {
                            pick = i;
                            break;
                        }
                        x -= w;
                    }
                    ordered.push(left.remove(pick).0);
                }
                ordered
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, carriers: &[&str], policy: RoutePolicy, weights: &[u32]) -> RouteConfig {
        RouteConfig {
            prefix: prefix.into(),
            carriers: carriers.iter().map(|c| c.to_string()).collect(),
            policy,
            weights: weights.to_vec(),
        }
    }

    const CARRIERS: [(&str, f64); 3] = [("alpha", 0.03), ("beta", 0.01), ("gamma", 0.02)];

    #[test]
    fn longest_prefix_wins_and_the_empty_prefix_catches_the_rest() {
        let router = Router::new(
            &[
                route("", &["gamma"], RoutePolicy::Priority, &[]),
                route("44", &["alpha", "beta"], RoutePolicy::Priority, &[]),
                route("4477", &["beta"], RoutePolicy::Priority, &[]),
            ],
            &CARRIERS,
        )
        .unwrap();
        assert_eq!(router.candidates("+447700900123", 0), vec![1]);
        assert_eq!(router.candidates("442071234567", 0), vec![0, 1]);
        assert_eq!(router.candidates("15551234567", 0), vec![2]);
    }

    #[test]
    fn no_route_gives_no_candidates() {
        let router = Router::new(
            &[route("44", &["alpha"], RoutePolicy::Priority, &[])],
            &CARRIERS,
        )
        .unwrap();
        assert!(router.candidates("15551234567", 0).is_empty());
    }

    #[test]
    fn least_cost_orders_by_price() {
        let router = Router::new(
            &[route(
                "",
                &["alpha", "beta", "gamma"],
                RoutePolicy::LeastCost,
                &[],
            )],
            &CARRIERS,
        )
        .unwrap();
        assert_eq!(router.candidates("1", 0), vec![1, 2, 0]);
    }

    #[test]
    fn weighted_split_follows_the_weights_and_lists_every_carrier() {
        let router = Router::new(
            &[route(
                "",
                &["alpha", "beta"],
                RoutePolicy::Weighted,
                &[70, 30],
            )],
            &CARRIERS,
        )
        .unwrap();
        let mut firsts = [0u32; 2];
        let mut rng = 0x1234_5678_u64;
        for _ in 0..10_000 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let order = router.candidates("1", rng >> 11);
            assert_eq!(order.len(), 2);
            firsts[order[0]] += 1;
        }
        assert!((6500..7500).contains(&firsts[0]), "{firsts:?}");
    }

    #[test]
    fn bad_routes_are_refused_with_their_key() {
        let err = Router::new(
            &[route("+44", &["alpha"], RoutePolicy::Priority, &[])],
            &CARRIERS,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "routes[\"+44\"].prefix: only digits are allowed (no '+')"
        );
        let err = Router::new(
            &[route("44", &["delta"], RoutePolicy::Priority, &[])],
            &CARRIERS,
        )
        .unwrap_err();
        assert!(matches!(err, RoutingError::UnknownCarrier { .. }));
        let err = Router::new(
            &[route("44", &["alpha", "beta"], RoutePolicy::Weighted, &[1])],
            &CARRIERS,
        )
        .unwrap_err();
        assert!(matches!(err, RoutingError::BadWeights { .. }));
        let err = Router::new(
            &[
                route("44", &["alpha"], RoutePolicy::Priority, &[]),
                route("44", &["beta"], RoutePolicy::Priority, &[]),
            ],
            &CARRIERS,
        )
        .unwrap_err();
        assert!(matches!(err, RoutingError::DuplicatePrefix { .. }));
    }
}
