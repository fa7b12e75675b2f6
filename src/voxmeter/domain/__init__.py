"""The pure core: catalog, quantities, months, meters and event rules. No I/O lives here."""
