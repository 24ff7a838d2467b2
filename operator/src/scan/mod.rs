//! `crmrisk scan`: the offline scanner.

pub mod load;
