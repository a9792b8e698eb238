//! Bindings generated from `wit/provider.wit` for the guest side.
//!
//! Plugin authors do not use these directly: [`crate::Provider`] and
//! [`crate::export_provider!`] wrap them. They are public because the export macro
//! expands inside the plugin's crate and must name them.

wit_bindgen::generate!({
    path: "../wit",
    world: "leasehold:provider/plugin",
    pub_export_macro: true,
    export_macro_name: "export_bindings",
    default_bindings_module: "::leasehold_sdk::bindings",
    runtime_path: "::leasehold_sdk::__private::wit_bindgen::rt",
});
