"""Tell a deployment's owners what its runs do: Prefect automations, a webhook block, events."""
