"""AWS: layer versions, the functions that use them, and what may be deleted (boto3)."""
