//! Bindings generated from `wit/0.2.0/provider.wit` (`leasehold:provider@0.2.0`)
//! for the guest side: the contract version plugins built with this SDK export.
//!
//! Plugin authors do not use these directly: [`crate::Provider`] and
//! [`crate::export_provider!`] wrap them. They are public because the export macro
//! expands inside the plugin's crate and must name them.

wit_bindgen::generate!({
    path: "../wit/0.2.0",
    world: "leasehold:provider/plugin",
    pub_export_macro: true,
    export_macro_name: "export_bindings",
    default_bindings_module: "::leasehold_sdk::bindings",
    runtime_path: "::leasehold_sdk::__private::wit_bindgen::rt",
});
