//! Mutation fuzzing of config validation and compilation, bounded in time
//! (`VPCGATE_FUZZ_SECS`, default 10; `VPCGATE_FUZZ_SEED` to replay). Starting from
//! valid documents, each round mutates the JSON tree (numbers to extremes, strings
//! to odd values, fields removed, duplicated or retyped, arrays grown) and checks:
//! validation never panics, every refusal is an EC2 error with a code and a
//! message, and every accepted config compiles.

mod support;

use std::time::{Duration, Instant};

use mgmt::compile::Compiler;
use mgmt::model::Config;
use mgmt::validate::check;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const STRINGS: [&str; 14] = [
    "",
    "-1",
    "tcp",
    "icmpv6",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.1/33",
    "sg-0000000000000000a",
    "eni-0000000000000000b",
    "acl-00000000000000001",
    "deny",
    "02:00:00:00:00:0a",
    "\u{0}\u{ffff}",
    "198.18.1.1",
];
const NUMBERS: [i64; 12] = [-2, -1, 0, 1, 8, 22, 255, 256, 32766, 32767, 65535, 65536];

fn mutate(rng: &mut impl Rng, v: &mut Value, depth: usize) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let k = &keys[rng.gen_range(0..keys.len())];
            match rng.gen_range(0..10) {
                0 => {
                    map.remove(k);
                }
                1 => *map.get_mut(k).unwrap() = random_leaf(rng),
                _ if depth < 8 => mutate(rng, map.get_mut(k).unwrap(), depth + 1),
                _ => {}
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let i = rng.gen_range(0..items.len());
            match rng.gen_range(0..8) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ if depth < 8 => mutate(rng, &mut items[i], depth + 1),
                _ => {}
            }
        }
        _ => *v = random_leaf(rng),
    }
}

fn random_leaf(rng: &mut impl Rng) -> Value {
    match rng.gen_range(0..5) {
        0 => Value::from(NUMBERS[rng.gen_range(0..NUMBERS.len())]),
        1 => Value::from(STRINGS[rng.gen_range(0..STRINGS.len())]),
        2 => Value::Bool(rng.gen()),
        3 => Value::Null,
        _ => Value::Array(vec![]),
    }
}

#[test]
fn fuzz_config_validation() {
    let secs: u64 = std::env::var("VPCGATE_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let seed: u64 = std::env::var("VPCGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("fuzz_config_validation: seed {seed} for {secs} s");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let bases: Vec<Value> = vec![
        serde_json::to_value(support::small::config()).unwrap(),
        serde_json::from_str(&std::fs::read_to_string(support::three_tier::CONFIG).unwrap()).unwrap(),
    ];
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut accepted, mut refused, mut unparsable) = (0u64, 0u64, 0u64);
    let mut compiler = Compiler::new();
    while Instant::now() < deadline {
        let mut doc = bases[rng.gen_range(0..bases.len())].clone();
        for _ in 0..rng.gen_range(1..4) {
            mutate(&mut rng, &mut doc, 0);
        }
        let cfg: Config = match serde_json::from_value(doc) {
            Ok(c) => c,
            Err(_) => {
                unparsable += 1;
                continue;
            }
        };
        match check(&cfg) {
            Ok(c) => {
                compiler.compile(&c);
                accepted += 1;
            }
            Err(e) => {
                assert!(!e.code.is_empty() && !e.message.is_empty(), "seed {seed}: empty error");
                assert!(
                    e.code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.'),
                    "seed {seed}: odd code {}",
                    e.code
                );
                refused += 1;
            }
        }
    }
    eprintln!("fuzz_config_validation: {accepted} accepted, {refused} refused, {unparsable} not documents");
    assert!(accepted > 0 && refused > 0, "the mutations are too weak or too strong");
}
