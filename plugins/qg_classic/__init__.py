"""pyqg's classic subgrid parameterizations for qg2layer, as batched hybridsolver plugins."""
