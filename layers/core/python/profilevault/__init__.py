"""ProfileVault domain library, shared by every Lambda function through the core layer."""
