//! Rolling-update arithmetic, as Kubernetes' deployment controller does it.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `value` of `total`: a number as is, a percentage rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let Some(percent) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).unwrap_or(i32::MAX)
        }
    }
}

/// maxSurge rounds up and maxUnavailable down; both zero would deadlock, so
/// maxUnavailable becomes 1 then.
pub fn fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), desired, true).max(0);
    let unavailable = scaled_value(max_unavailable.unwrap_or(&quarter), desired, false).max(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// The desired replicas and the bounds of one rolling update.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub desired: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
}

/// The new ReplicaSet's next size: grow while the total stays within desired + maxSurge.
pub fn new_replicas(bounds: Bounds, new: i32, all: i32) -> i32 {
    if new >= bounds.desired {
        return bounds.desired;
    }
    let max_total = bounds.desired + bounds.max_surge;
    if all >= max_total {
        return new;
    }
    new + (max_total - all).min(bounds.desired - new)
}

/// One old ReplicaSet: its spec replicas and available pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Old {
    pub replicas: i32,
    pub available: i32,
}

/// The old ReplicaSets' next sizes (oldest first in `olds`): first drop their unavailable
/// pods, then available ones while at least desired - maxUnavailable stay available.
pub fn scale_down_old(bounds: Bounds, new: Old, olds: &[Old]) -> Vec<i32> {
    let mut sizes: Vec<i32> = olds.iter().map(|o| o.replicas).collect();
    let all = new.replicas + sizes.iter().sum::<i32>();
    let min_available = bounds.desired - bounds.max_unavailable;
    let new_unavailable = (new.replicas - new.available).max(0);
    let mut budget = all - min_available - new_unavailable;
    if budget <= 0 {
        return sizes;
    }
    for (size, old) in sizes.iter_mut().zip(olds) {
        if budget <= 0 {
            break;
        }
        let unhealthy = (*size - old.available).max(0);
        let cut = unhealthy.min(budget);
        *size -= cut;
        budget -= cut;
    }
    let available: i32 = new.available + olds.iter().map(|o| o.available).sum::<i32>();
    let mut to_cut = available - min_available;
    for size in sizes.iter_mut() {
        if to_cut <= 0 {
            break;
        }
        let cut = (*size).min(to_cut);
        *size -= cut;
        to_cut -= cut;
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_like_kubernetes() {
        assert_eq!(fenceposts(None, None, 10), (3, 2));
        assert_eq!(fenceposts(None, None, 1), (1, 0));
        assert_eq!(
            fenceposts(Some(&IntOrString::Int(0)), Some(&pct("10%")), 5),
            (0, 1),
            "0 and 0 become maxUnavailable 1"
        );
        assert_eq!(
            fenceposts(Some(&pct("50%")), Some(&IntOrString::Int(2)), 5),
            (3, 2)
        );
    }

    #[test]
    fn new_replica_set_grows_within_the_surge() {
        let b = Bounds {
            desired: 8,
            max_surge: 2,
            max_unavailable: 2,
        };
        assert_eq!(new_replicas(b, 0, 8), 2);
        assert_eq!(new_replicas(b, 2, 10), 2);
        assert_eq!(new_replicas(b, 2, 6), 6);
        assert_eq!(new_replicas(b, 7, 7), 8);
        assert_eq!(new_replicas(b, 9, 9), 8);
    }

    #[test]
    fn old_replica_sets_shrink_keeping_minimum_availability() {
        let b = Bounds {
            desired: 8,
            max_surge: 2,
            max_unavailable: 2,
        };
        // New RS has 2 unavailable pods: old ones may lose 2 available pods (8 - 6).
        let new = Old {
            replicas: 2,
            available: 0,
        };
        let old = Old {
            replicas: 8,
            available: 8,
        };
        assert_eq!(scale_down_old(b, new, &[old]), vec![6]);
        // Unhealthy old pods go first, then available ones down to the minimum.
        let healthy_new = Old {
            replicas: 2,
            available: 2,
        };
        let sick = Old {
            replicas: 8,
            available: 5,
        };
        assert_eq!(scale_down_old(b, healthy_new, &[sick]), vec![4]);
        // Nothing may go while availability sits at the minimum.
        let at_min = Old {
            replicas: 6,
            available: 6,
        };
        assert_eq!(scale_down_old(b, new, &[at_min]), vec![6]);
    }
}
