use crate::error::Error;
use crate::gpu::{list_adapters, Gpu, GpuOptions};
use crate::Result;

pub fn run(options: &GpuOptions) -> Result<()> {
    let adapters = pollster::block_on(list_adapters());
    if adapters.is_empty() {
        return Err(Error::NoAdapter(String::new()));
    }
    for a in &adapters {
        super::say(format!("{} ({}, {})", a.name, a.backend, a.device_type))?;
        super::say(format!("  driver: {}", a.driver))?;
        super::say(format!(
            "  max storage binding: {} MiB, max buffer: {} MiB, workgroups per dimension: {}, invocations per workgroup: {}",
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroups_per_dimension,
            a.max_compute_invocations_per_workgroup
        ))?;
        let features = if a.features.is_empty() {
            "none".to_string()
        } else {
            a.features.join(", ")
        };
        super::say(format!("  features: {features}"))?;
    }
    let chosen = Gpu::new_blocking(options)?;
    super::say(format!(
        "selected: {} ({})",
        chosen.adapter_name(),
        chosen.backend()
    ))?;
    Ok(())
}
