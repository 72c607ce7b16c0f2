//! Guest SDK for Sluice filter plugins (filled in by the wasm filters work).
