"""Protocol clients and drivers that read devices read-only and adapt them to the wire model."""
