//! Empty library target: lets the exporter depend on this crate so cargo rebuilds it when the
//! eBPF sources change (the programs themselves are the `spanprobe` binary target).
#![no_std]
