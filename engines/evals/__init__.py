"""The eval engine: suites, scoring and the sandbox that runs generated code (no Prefect, no Streamlit)."""
