//! One definition of the small bit-flag sets the engine attaches to its
//! results (window, power-quality event and flicker flags), so each set
//! only lists its flags.

/// Defines a `u8` flag set: the named constants, `bits`/`from_bits`,
/// `contains`, `is_clean` (no flag), `|` and `|=`, and a `Debug` that
/// names the flags set (`Name(A|B)`). Constants are given in bit order.
macro_rules! flag_set {
    (
        $(#[$meta:meta])*
        pub struct $name:ident;
        $( $(#[$flag_meta:meta])* $flag:ident = $bit:expr; )+
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(u8);

        impl $name {
            pub const NONE: $name = $name(0);
            $( $(#[$flag_meta])* pub const $flag: $name = $name(1 << $bit); )+

            pub fn bits(self) -> u8 {
                self.0
            }

            pub fn from_bits(bits: u8) -> Self {
                $name(bits)
            }

            pub fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// No flag at all: the value is fully trustworthy.
            pub fn is_clean(self) -> bool {
                self.0 == 0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl std::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let names: Vec<&str> = [$( ($name::$flag, stringify!($flag)) ),+]
                    .iter()
                    .filter(|(flag, _)| self.0 & flag.0 != 0)
                    .map(|(_, name)| *name)
                    .collect();
                write!(f, "{}({})", stringify!($name), names.join("|"))
            }
        }
    };
}

pub(crate) use flag_set;
