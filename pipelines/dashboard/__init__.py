"""The dashboard: Plotly Dash views of the published runs, read through the application layer."""
