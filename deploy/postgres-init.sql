-- Databases beside Airflow's metadata (created once, when the PostgreSQL volume is new):
-- loanstress: the loan and results store; mlflow: MLflow's tracking store.
CREATE DATABASE loanstress OWNER airflow;
CREATE DATABASE mlflow OWNER airflow;
