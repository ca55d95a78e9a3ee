"""Reports: report.json, tables, HTML, annotations, timeline pictures."""
