//! How the litekeep workers write: `--durability` and `--write-gate`, passed on to every
//! worker process and applied to its `Database` (see `litekeep::Builder`).

use clap::ValueEnum;
use serde::Serialize;

/// `litekeep::Durability`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Durability {
    /// `synchronous = NORMAL` (litekeep's default).
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit synced.
    Full,
}

/// `litekeep::Builder::write_gate`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Gate {
    /// litekeep's default (on).
    #[default]
    Auto,
    /// Writers of every process queue at `<db>.write.lock`.
    On,
    /// No write gate.
    Off,
}

/// Both, as one worker gets them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Writing {
    /// The durability.
    pub durability: Durability,
    /// The write gate.
    pub gate: Gate,
}

impl Writing {
    /// Applies both to a litekeep builder.
    pub fn apply(self, builder: litekeep::Builder) -> litekeep::Builder {
        let builder = builder.durability(match self.durability {
            Durability::Normal => litekeep::Durability::Normal,
            Durability::Full => litekeep::Durability::Full,
        });
        match self.gate {
            Gate::Auto => builder,
            Gate::On => builder.write_gate(true),
            Gate::Off => builder.write_gate(false),
        }
    }

    /// The worker's command-line arguments that carry it.
    pub fn args(self) -> [String; 4] {
        let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| {
            v().map_or_else(String::new, |p| p.get_name().to_owned())
        };
        [
            "--durability".to_owned(),
            name(&|| self.durability.to_possible_value()),
            "--write-gate".to_owned(),
            name(&|| self.gate.to_possible_value()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_parse_back() {
        let w = Writing {
            durability: Durability::Full,
            gate: Gate::Off,
        };
        let [_, d, _, g] = w.args();
        assert_eq!(Durability::from_str(&d, false), Ok(Durability::Full));
        assert_eq!(Gate::from_str(&g, false), Ok(Gate::Off));
    }
}
