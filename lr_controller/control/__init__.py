"""The controller side: rewards, the environment, the PPO agent, controller training, collection, export."""
