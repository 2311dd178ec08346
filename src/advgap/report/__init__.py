"""The report: numbers, figures and the HTML page, drawn from the results store only."""
